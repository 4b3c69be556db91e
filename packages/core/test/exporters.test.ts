import type { DecisionEvent } from '@fapi-guard/core';
import { openTelemetryDecisions } from '@fapi-guard/core/otel';
import { prometheusMetrics } from '@fapi-guard/core/prometheus';
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';

const allow: DecisionEvent = {
  outcome: 'allow',
  status: 200,
  method: 'GET',
  url: '/accounts',
  binding: 'dpop',
  issuer: 'https://as.example.com',
  clientId: 'client-1',
  tokenHash: 'aGFzaA',
  interactionId: 'c770aef3-6784-41f7-8e0e-ff5f97bddb3a',
  durationMs: 0.7,
};
const deny: DecisionEvent = {
  outcome: 'deny',
  status: 401,
  reason: 'credentials_missing',
  error: 'invalid_token',
  method: 'GET',
  url: '/accounts',
  durationMs: 0.2,
};
const unavailable: DecisionEvent = { ...deny, status: 503, reason: 'issuer_unavailable', error: undefined, durationMs: 3000 };

describe('@fapi-guard/core/prometheus', () => {
  it('counts decisions with conventional names, seconds and no empty label, in the registry given', async () => {
    const registry = new Registry();
    const metrics = prometheusMetrics({ registry });
    for (const e of [allow, allow, deny, unavailable]) metrics.record(e);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE fapi_guard_decisions_total counter');
    expect(text).toContain('fapi_guard_decisions_total{outcome="allow",status="200",reason="none",binding="dpop"} 2');
    expect(text).toContain('fapi_guard_decisions_total{outcome="deny",status="401",reason="credentials_missing",binding="none"} 1');
    expect(text).toContain('fapi_guard_decisions_total{outcome="deny",status="503",reason="issuer_unavailable",binding="none"} 1');
    expect(text).not.toMatch(/=""/);
    expect(text).toContain('# TYPE fapi_guard_decision_duration_seconds histogram');
    // 0.7 ms falls in le=0.001, not in le=0.0005; 3 s only in +Inf.
    expect(text).toContain('fapi_guard_decision_duration_seconds_bucket{le="0.0005",outcome="allow"} 0');
    expect(text).toContain('fapi_guard_decision_duration_seconds_bucket{le="0.001",outcome="allow"} 2');
    expect(text).toContain('fapi_guard_decision_duration_seconds_bucket{le="1",outcome="deny"} 1');
    expect(text).toContain('fapi_guard_decision_duration_seconds_bucket{le="+Inf",outcome="deny"} 2');
    expect(text).toContain('fapi_guard_decision_duration_seconds_sum{outcome="allow"} 0.0014');
    expect(text).not.toContain('aGFzaA');
  });

  it('takes a prefix and buckets', async () => {
    const registry = new Registry();
    prometheusMetrics({ registry, prefix: 'payments_guard', buckets: [0.5] }).record(deny);
    const text = await registry.metrics();
    expect(text).toContain('payments_guard_decisions_total{');
    expect(text).toContain('payments_guard_decision_duration_seconds_bucket{le="0.5",outcome="deny"} 1');
  });
});

describe('@fapi-guard/core/otel', () => {
  it('one span per check with the decision, never the token; only 5xx is an error', () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const otel = openTelemetryDecisions({ tracer: provider.getTracer('test') });
    for (const e of [allow, deny, unavailable]) otel.record(e);
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(['fapi-guard check', 'fapi-guard check', 'fapi-guard check']);
    const [a, d, u] = spans as [(typeof spans)[0], (typeof spans)[0], (typeof spans)[0]];
    expect(a.attributes).toEqual({
      'fapi_guard.outcome': 'allow',
      'http.response.status_code': 200,
      'fapi_guard.reason': 'none',
      'fapi_guard.binding': 'dpop',
      'http.request.method': 'GET',
      'url.path': '/accounts',
      'fapi_guard.issuer': 'https://as.example.com',
      'fapi_guard.client_id': 'client-1',
      'fapi_guard.interaction_id': allow.interactionId,
    });
    expect(JSON.stringify(spans.map((s) => s.attributes))).not.toContain('aGFzaA');
    expect(d.attributes).toMatchObject({
      'fapi_guard.reason': 'credentials_missing',
      'fapi_guard.binding': 'none',
      'fapi_guard.error': 'invalid_token',
    });
    expect(a.status.code).toBe(0);
    expect(d.status.code).toBe(0);
    expect(u.status.code).toBe(2);
    // The span covers the check: it starts durationMs before it ends.
    const ms = (t: [number, number]) => t[0] * 1000 + t[1] / 1e6;
    expect(ms(u.endTime) - ms(u.startTime)).toBeCloseTo(3000, 0);
  });

  it('counts decisions and records durations in seconds on the meter', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const otel = openTelemetryDecisions({ meter: provider.getMeter('test') });
    for (const e of [allow, allow, deny]) otel.record(e);
    await reader.forceFlush();
    const metrics = exporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
    const counter = metrics.find((m) => m.descriptor.name === 'fapi_guard.decisions');
    expect(counter?.dataPoints.map((p) => [p.attributes, p.value])).toEqual([
      [{ 'fapi_guard.outcome': 'allow', 'http.response.status_code': 200, 'fapi_guard.reason': 'none', 'fapi_guard.binding': 'dpop' }, 2],
      [
        {
          'fapi_guard.outcome': 'deny',
          'http.response.status_code': 401,
          'fapi_guard.reason': 'credentials_missing',
          'fapi_guard.binding': 'none',
        },
        1,
      ],
    ]);
    const histogram = metrics.find((m) => m.descriptor.name === 'fapi_guard.decision.duration');
    expect(histogram?.descriptor.unit).toBe('s');
    expect(histogram?.dataPointType).toBe(DataPointType.HISTOGRAM);
    const allowed = histogram?.dataPoints.find((p) => p.attributes['fapi_guard.outcome'] === 'allow')?.value as {
      sum: number;
      count: number;
    };
    expect(allowed.count).toBe(2);
    expect(allowed.sum).toBeCloseTo(0.0014, 6);
    await provider.shutdown();
  });
});

describe('optional peers', () => {
  it('only the two entry points import prom-client or @opentelemetry: the core loads without them', () => {
    const { readdirSync, readFileSync } = require('node:fs') as typeof import('node:fs');
    const { join } = require('node:path') as typeof import('node:path');
    const src = join(__dirname, '..', 'src');
    const files = (readdirSync(src, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts'));
    const importers = files.filter((f) => /from '(prom-client|@opentelemetry\/[a-z-]+)'/.test(readFileSync(join(src, f), 'utf8')));
    expect(importers.sort()).toEqual(['observe/otel.ts', 'observe/prometheus.ts']);
  });
});
