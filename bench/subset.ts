// The benches' subset options (--models, --modes, --clients): comma-separated lists, and which models a --models list
// picks. Shared by bench:redrafter and bench:serve so that both read a list the same way.

/** A comma-separated option's items, trimmed, empty ones dropped (undefined: the option was not given). */
export function listOption(text: string | undefined): string[] | undefined {
  return text?.split(',').map((item) => item.trim()).filter((item) => item.length > 0);
}

/**
 * The models a --models list picks: those whose name contains one of its items, except that an item that is some
 * model's whole name picks that model alone ("stories260K" is also part of the xl models' names). Every model when
 * `only` is undefined; an error naming the list when it picks none.
 */
export function pickModels<T extends { name: string }>(all: readonly T[], only: readonly string[] | undefined): T[] {
  if (!only) return [...all];
  const picks = (spec: T, name: string): boolean =>
    all.some((other) => other.name === name) ? spec.name === name : spec.name.includes(name);
  const chosen = all.filter((spec) => only.some((name) => picks(spec, name)));
  if (chosen.length === 0) throw new Error(`--models ${only.join(',')}: no model's name contains any of these`);
  return chosen;
}
