/**
 * `@fapi-guard/core/prometheus`: decisions as prom-client metrics in a registry the application
 * owns. A separate entry point so that the core loads without prom-client (an optional peer
 * dependency): only this file imports it.
 *
 *   const metrics = prometheusMetrics({ registry });
 *   createGuard({ ..., onDecision: metrics.record });
 *
 * Names and units follow the Prometheus conventions: a `_total` counter, a histogram in seconds.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { DecisionEvent } from '../config/options.js';

export interface PrometheusMetricsOptions {
  /** Where the metrics are registered (yours; nothing goes in prom-client's global registry). */
  registry: Registry;
  /** Name prefix. @default 'fapi_guard' */
  prefix?: string;
  /** Upper bounds of the duration histogram, in seconds. @default [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1] */
  buckets?: number[];
}

export interface PrometheusMetrics {
  /** Records one decision; pass it as (or call it from) `onDecision`. */
  record(event: DecisionEvent): void;
}

const DEFAULT_BUCKETS = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/**
 * `<prefix>_decisions_total{outcome,status,reason,binding}` and
 * `<prefix>_decision_duration_seconds{outcome}`. `reason` is `none` for allowed requests;
 * `status` is the guard's answer (the refusal's status, 200 for every allowed request: the status
 * the handler sends is not the guard's to know); `binding` is the sender constraint proven, or on a
 * refusal the one the token asks for, and `none` when the request was refused before its token
 * was verified (see {@link DecisionEvent.binding}). Labels are never empty. Every label value comes from a closed list (no URL, client or token), so cardinality is bounded.
 */
export function prometheusMetrics(options: PrometheusMetricsOptions): PrometheusMetrics {
  const prefix = options.prefix ?? 'fapi_guard';
  const registers = [options.registry];
  const decisions = new Counter({
    name: `${prefix}_decisions_total`,
    help: 'Access decisions of fapi-guard.',
    labelNames: ['outcome', 'status', 'reason', 'binding'] as const,
    registers,
  });
  const duration = new Histogram({
    name: `${prefix}_decision_duration_seconds`,
    help: 'Time fapi-guard took to decide, in seconds.',
    labelNames: ['outcome'] as const,
    buckets: options.buckets ?? DEFAULT_BUCKETS,
    registers,
  });
  return {
    record(event) {
      decisions.inc({
        outcome: event.outcome,
        status: String(event.status),
        reason: event.reason ?? 'none',
        binding: event.binding ?? 'none',
      });
      duration.observe({ outcome: event.outcome }, event.durationMs / 1000);
    },
  };
}
