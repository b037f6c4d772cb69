/**
 * `JSON.stringify` that cannot throw: undefined when the value cannot be
 * encoded. In practice that is a value nested too deeply: every JSON text the
 * runner or the API server sends parses (V8's `JSON.parse` does not recurse,
 * a million levels are fine), but `JSON.stringify` recurses and runs out of
 * stack a few thousand levels down, with a RangeError that, thrown from an
 * event handler, would end the gateway process.
 */
export function encodeJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}
