/**
 * `@fapi-guard/core/otel`: decisions as OpenTelemetry spans and metrics, through
 * `@opentelemetry/api` only (an optional peer dependency; the application brings the SDK and its
 * exporters). A separate entry point so that the core loads without it.
 *
 *   const otel = openTelemetryDecisions({ tracer: trace.getTracer('payments'), meter: metrics.getMeter('payments') });
 *   createGuard({ ..., onDecision: otel.record });
 *
 * One span per check, started at the check's start (now − `durationMs`) in the active context, so
 * it sits under the HTTP server span of the request. Attributes are the decision's outcome, status,
 * reason, binding, issuer, client and interaction id; never the token, nor its hash.
 */
import { type Attributes, type Meter, SpanKind, SpanStatusCode, type Tracer } from '@opentelemetry/api';
import type { DecisionEvent } from '../config/options.js';

export interface OpenTelemetryOptions {
  /** Spans are created with it; none when absent. */
  tracer?: Tracer;
  /** `fapi_guard.decisions` (counter) and `fapi_guard.decision.duration` (histogram, s) are created on it; none when absent. */
  meter?: Meter;
}

export interface OpenTelemetryDecisions {
  /** Records one decision; pass it as (or call it from) `onDecision`. */
  record(event: DecisionEvent): void;
}

/** Attributes with closed value lists: safe as metric dimensions. */
function metricAttributes(event: DecisionEvent): Attributes {
  return {
    'fapi_guard.outcome': event.outcome,
    'http.response.status_code': event.status,
    'fapi_guard.reason': event.reason ?? 'none',
    'fapi_guard.binding': event.binding ?? 'none',
  };
}

function spanAttributes(event: DecisionEvent): Attributes {
  const attributes: Attributes = { ...metricAttributes(event), 'http.request.method': event.method, 'url.path': event.url };
  const optional: [string, string | undefined][] = [
    ['fapi_guard.error', event.error],
    ['fapi_guard.issuer', event.issuer],
    ['fapi_guard.client_id', event.clientId],
    ['fapi_guard.interaction_id', event.interactionId],
  ];
  for (const [key, value] of optional) if (value !== undefined) attributes[key] = value;
  return attributes;
}

export function openTelemetryDecisions(options: OpenTelemetryOptions): OpenTelemetryDecisions {
  const { tracer, meter } = options;
  const decisions = meter?.createCounter('fapi_guard.decisions', { description: 'Access decisions of fapi-guard.' });
  const duration = meter?.createHistogram('fapi_guard.decision.duration', { description: 'Time fapi-guard took to decide.', unit: 's' });
  return {
    record(event) {
      if (tracer) {
        const end = Date.now();
        const span = tracer.startSpan('fapi-guard check', {
          kind: SpanKind.INTERNAL,
          startTime: end - event.durationMs,
          attributes: spanAttributes(event),
        });
        // A refusal is the guard working; only a 5xx (the guard could not decide) is an error.
        if (event.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: event.reason });
        span.end(end);
      }
      const attributes = metricAttributes(event);
      decisions?.add(1, attributes);
      duration?.record(event.durationMs / 1000, { 'fapi_guard.outcome': event.outcome });
    },
  };
}
