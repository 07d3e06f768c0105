// Node resolve hook: openapi-typescript prints its output with the
// TypeScript 5 compiler API, which TypeScript 7 (this app's compiler) no
// longer has; it gets `typescript5` (TypeScript 5, an npm alias) instead.
export async function resolve(specifier, context, next) {
  if (specifier === "typescript" && context.parentURL?.includes("/node_modules/openapi-typescript/")) {
    return next("typescript5", context);
  }
  return next(specifier, context);
}
