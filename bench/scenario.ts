/**
 * Scenario names: `<kind>-<framework>[-<variant>]`, e.g. `fapi-nestjs-fastify-mtls`. The
 * framework is matched against the known list (longest first: `nestjs-fastify` before `nestjs`).
 */
export const FRAMEWORKS = ['nestjs-fastify', 'nestjs', 'express', 'fastify', 'koa', 'hono'] as const;
export type BenchFramework = (typeof FRAMEWORKS)[number];

export interface ScenarioName {
  kind: string;
  framework: BenchFramework | undefined;
  /** What follows the framework: `dpop`, `mtlsload`, `dpop-redis`…; empty for the plain route. */
  variant: string;
}

export function parseScenario(scenario: string): ScenarioName {
  const dash = scenario.indexOf('-');
  const kind = dash < 0 ? scenario : scenario.slice(0, dash);
  const rest = dash < 0 ? '' : scenario.slice(dash + 1);
  const framework = FRAMEWORKS.find((f) => rest === f || rest.startsWith(`${f}-`));
  const variant = framework ? rest.slice(framework.length + 1) : rest;
  return { kind, framework, variant };
}
