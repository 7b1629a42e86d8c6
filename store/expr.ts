/**
 * Builds UpdateItem expressions with generated placeholders, so callers never splice names or values
 * into expression strings (and reserved words like `state` or `name` need no special care).
 */

/** The parts of an UpdateItem request an {@link Update} produces. */
export interface UpdateParts {
  UpdateExpression: string;
  ConditionExpression?: string;
  ExpressionAttributeNames: Record<string, string>;
  ExpressionAttributeValues?: Record<string, unknown>;
}

/** Collects SET/REMOVE/ADD clauses and conditions for one UpdateItem. */
export class Update {
  readonly #names = new Map<string, string>();
  readonly #values: Record<string, unknown> = {};
  readonly #sets: string[] = [];
  readonly #removes: string[] = [];
  readonly #adds: string[] = [];
  readonly #deletes: string[] = [];
  readonly #conditions: string[] = [];

  /** Placeholder of an attribute path, e.g. `taskTokens.activate` → `#n3.#n4`. */
  path(path: string): string {
    return path
      .split('.')
      .map((part) => {
        let ph = this.#names.get(part);
        if (!ph) {
          ph = `#n${this.#names.size}`;
          this.#names.set(part, ph);
        }
        return ph;
      })
      .join('.');
  }

  /** Placeholder of a value. */
  value(v: unknown): string {
    const ph = `:v${Object.keys(this.#values).length}`;
    this.#values[ph] = v;
    return ph;
  }

  /** `SET path = value`. */
  set(path: string, v: unknown): this {
    this.#sets.push(`${this.path(path)} = ${this.value(v)}`);
    return this;
  }

  /** `SET path = if_not_exists(path, value)`: keeps a value written earlier. */
  setIfAbsent(path: string, v: unknown): this {
    const p = this.path(path);
    this.#sets.push(`${p} = if_not_exists(${p}, ${this.value(v)})`);
    return this;
  }

  /** `SET path = list_append(path, list)` (the list attribute must exist). */
  append(path: string, list: readonly unknown[]): this {
    const p = this.path(path);
    this.#sets.push(`${p} = list_append(${p}, ${this.value(list)})`);
    return this;
  }

  /** `SET path = list_append(if_not_exists(path, []), list)`: also for items written before the list existed. */
  appendCreating(path: string, list: readonly unknown[]): this {
    const p = this.path(path);
    this.#sets.push(`${p} = list_append(if_not_exists(${p}, ${this.value([])}), ${this.value(list)})`);
    return this;
  }

  /** `REMOVE path`. */
  remove(path: string): this {
    this.#removes.push(this.path(path));
    return this;
  }

  /** `ADD path value` (numbers and sets). */
  add(path: string, v: unknown): this {
    this.#adds.push(`${this.path(path)} ${this.value(v)}`);
    return this;
  }

  /** `DELETE path value` (remove elements from a set). */
  delete(path: string, v: unknown): this {
    this.#deletes.push(`${this.path(path)} ${this.value(v)}`);
    return this;
  }

  /** AND a condition; `cond` writes its own placeholders through {@link path} and {@link value}. */
  when(cond: (u: this) => string): this {
    this.#conditions.push(cond(this));
    return this;
  }

  /** The request parts. */
  build(): UpdateParts {
    const clauses = [
      this.#sets.length ? `SET ${this.#sets.join(', ')}` : '',
      this.#removes.length ? `REMOVE ${this.#removes.join(', ')}` : '',
      this.#adds.length ? `ADD ${this.#adds.join(', ')}` : '',
      this.#deletes.length ? `DELETE ${this.#deletes.join(', ')}` : '',
    ].filter(Boolean);
    const parts: UpdateParts = {
      UpdateExpression: clauses.join(' '),
      ExpressionAttributeNames: Object.fromEntries([...this.#names].map(([name, ph]) => [ph, name])),
    };
    if (this.#conditions.length)
      parts.ConditionExpression = this.#conditions.map((c) => `(${c})`).join(' AND ');
    if (Object.keys(this.#values).length) parts.ExpressionAttributeValues = this.#values;
    return parts;
  }
}
