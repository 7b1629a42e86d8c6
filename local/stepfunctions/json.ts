/** JSON values as they travel through states, task results and the API. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A JSON object (state definitions, parameters, API request bodies). */
export type JsonObject = { [key: string]: Json };

/** True for plain JSON objects (not arrays, not null). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Round-trips a value through JSON, as the real service does with every Lambda result and task output:
 * `undefined` becomes `null`, Dates become strings, functions disappear.
 */
export function toJson(value: unknown): Json {
  if (value === undefined) return null;
  const text = JSON.stringify(value);
  return text === undefined ? null : (JSON.parse(text) as Json);
}

/** True if `needle` occurs as a string anywhere inside `value` (used to find a task token in a payload). */
export function containsString(value: Json | undefined, needle: string): boolean {
  if (value === needle) return true;
  if (Array.isArray(value)) return value.some((item) => containsString(item, needle));
  if (isJsonObject(value)) return Object.values(value).some((item) => containsString(item, needle));
  return false;
}
