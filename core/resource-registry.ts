/**
 * The resource registry: every resource key a caller may name, with its validated config. It is an object
 * passed to whoever looks resources up, never a module global: the backend builds one per request from
 * the shipped sites plus the configs the session added (so one session's configs are invisible to the
 * others), tests build their own.
 */
import aliasesFile from '../resources/aliases.json';
import llnl from '../resources/llnl.json';
import local from '../resources/local.json';
import ncar from '../resources/ncar.json';
import nersc from '../resources/nersc.json';
import purdue from '../resources/purdue.json';
import tacc from '../resources/tacc.json';
import { BadParameter } from './errors.ts';
import { parseResourceFile, type ResourceConfig } from './resources.ts';

/** Shipped site files, by site name; a test checks this matches `resources/<site>.json`. */
export const SHIPPED_SITES: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  llnl,
  local,
  ncar,
  nersc,
  purdue,
  tacc,
};

/**
 * Deprecated or short names → resource keys (`resources/aliases.json`, RP's `configs/aliases.json`:
 * `localhost` → `local.localhost`). A key that is registered itself always wins over an alias.
 */
export const SHIPPED_ALIASES: Readonly<Record<string, string>> = aliasesFile.aliases;

/** Resource keys and their configs, plus aliases; see the module comment. */
export class ResourceRegistry {
  readonly #configs = new Map<string, ResourceConfig>();
  readonly #aliases = new Map<string, string>();

  /** A registry holding exactly `configs` (already validated) and `aliases`. */
  constructor(
    configs: Iterable<readonly [string, ResourceConfig]> = [],
    aliases: Readonly<Record<string, string>> = {},
  ) {
    for (const [key, config] of configs) this.#configs.set(key, config);
    for (const [alias, key] of Object.entries(aliases)) this.#aliases.set(alias, key);
  }

  /**
   * A new registry with the shipped sites and aliases. Each call validates the shipped files afresh, so
   * a broken shipped file fails loudly and no two registries share a mutable config.
   */
  static shipped(): ResourceRegistry {
    const entries = Object.entries(SHIPPED_SITES).flatMap(([site, file]) => parseResourceFile(file, site));
    return new ResourceRegistry(entries, SHIPPED_ALIASES);
  }

  /** A copy to extend (e.g. with a session's configs) without touching this one. */
  copy(): ResourceRegistry {
    return new ResourceRegistry(this.#configs, Object.fromEntries(this.#aliases));
  }

  /**
   * The key a name stands for: the name itself if registered, else the key its alias names.
   * @throws BadParameter naming the unknown name and listing the known keys.
   */
  resolve(name: string): string {
    if (this.#configs.has(name)) return name;
    const target = this.#aliases.get(name);
    if (target !== undefined && this.#configs.has(target)) return target;
    const shown = JSON.stringify(name.slice(0, 200)).slice(1, -1);
    throw new BadParameter(`unknown resource '${shown}'; known resources: ${this.list().join(', ')}`);
  }

  /** True if `name` is a registered key or an alias of one. */
  has(name: string): boolean {
    return this.#configs.has(name) || this.#configs.has(this.#aliases.get(name) ?? '');
  }

  /**
   * The configuration of a resource key such as `local.slurm` (or an alias such as `localhost`).
   * @throws BadParameter naming the unknown key and listing the known ones.
   */
  get(name: string): ResourceConfig {
    return this.#configs.get(this.resolve(name)) as ResourceConfig;
  }

  /**
   * Adds resource configurations (RP's `Session.add_resource_config`), replacing keys that exist. `file`
   * is an object of resource name → config, named as {@link parseResourceFile} says. All entries are
   * validated before any is added. Reading a file is the adapter's job (`resources/files.ts`).
   * @returns the keys added, sorted.
   */
  add(file: Readonly<Record<string, unknown>>, site?: string): string[] {
    return this.set(parseResourceFile(file, site));
  }

  /** Adds configs validated already (e.g. read back from the store). @returns their keys, sorted. */
  set(entries: Iterable<readonly [string, ResourceConfig]>): string[] {
    const keys: string[] = [];
    for (const [key, config] of entries) {
      this.#configs.set(key, config);
      keys.push(key);
    }
    return keys.sort();
  }

  /** All registered keys, sorted (aliases not included, as in RP's `list_resources`). */
  list(): string[] {
    return [...this.#configs.keys()].sort();
  }

  /** The aliases, alias → key. */
  aliases(): Record<string, string> {
    return Object.fromEntries(this.#aliases);
  }
}
