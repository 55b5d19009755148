// Prometheus metrics of one server, on a registry of its own (several servers in one process, as in the tests, must
// not share counters). Names: README "Server" section.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface ServerMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'endpoint' | 'status'>;
  readonly promptTokens: Counter;
  readonly generationTokens: Counter;
  readonly draftTokens: Counter;
  readonly draftTokensAccepted: Counter;
  readonly steps: Counter<'shape'>;
  readonly draftTokensAcceptedByDepth: Counter<'depth'>;
  readonly timeToFirstToken: Histogram;
  readonly interTokenLatency: Histogram;
  readonly requestDuration: Histogram<'endpoint'>;
  readonly waiting: Gauge;
  readonly running: Gauge;
  readonly kvCacheUsage: Gauge;
  readonly cacheConfigInfo: Gauge<'block_size' | 'num_gpu_blocks'>;
}

// Latency buckets from 1 ms to 30 s: stories260K emits a token in well under a millisecond, a 7B model on a laptop
// CPU in hundreds; the same buckets serve both.
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function createMetrics(): ServerMetrics {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    requests: new Counter({ name: 'redrafter_requests_total', help: 'HTTP requests by endpoint and status code',
      labelNames: ['endpoint', 'status'], registers }),
    promptTokens: new Counter({ name: 'redrafter_prompt_tokens_total', help: 'Prompt tokens of generation requests',
      registers }),
    generationTokens: new Counter({ name: 'redrafter_generation_tokens_total', help: 'Tokens generated', registers }),
    draftTokens: new Counter({ name: 'redrafter_draft_tokens_total',
      help: 'Draft tokens proposed by the drafter (W x (L-1) per tree step)', registers }),
    draftTokensAccepted: new Counter({ name: 'redrafter_draft_tokens_accepted_total',
      help: 'Draft tokens accepted by verification', registers }),
    steps: new Counter({ name: 'redrafter_decode_steps_total',
      help: 'Decoding steps by shape ("WxL" tree steps, "plain" for plain decoding steps)', labelNames: ['shape'],
      registers }),
    // vLLM's spec_decode_num_accepted_tokens_per_pos: the acceptance curve a dashboard can draw without the responses.
    draftTokensAcceptedByDepth: new Counter({ name: 'redrafter_draft_tokens_accepted_by_depth_total',
      help: 'Tree steps whose accepted path reached draft depth d (d = 1 is the first draft token after the model\'s own)',
      labelNames: ['depth'], registers }),
    timeToFirstToken: new Histogram({ name: 'redrafter_time_to_first_token_seconds',
      help: 'Seconds from the request reaching the server to its first generated token (queueing included)',
      buckets: LATENCY_BUCKETS, registers }),
    interTokenLatency: new Histogram({ name: 'redrafter_inter_token_latency_seconds',
      help: 'Seconds per token between decoding steps (a step committing n tokens observes its time / n, n times)',
      buckets: LATENCY_BUCKETS, registers }),
    requestDuration: new Histogram({ name: 'redrafter_request_duration_seconds',
      help: 'Seconds from a generation request reaching the server to its last byte', labelNames: ['endpoint'],
      buckets: LATENCY_BUCKETS, registers }),
    // The Gateway API Inference Extension's model-server protocol: the endpoint picker (EPP) reads these three, and the
    // optional cache_config_info below (vLLM names them vllm:…; deploy/ maps ours). README "Scale-out".
    waiting: new Gauge({ name: 'redrafter:num_requests_waiting', help: 'Requests waiting in the queue', registers }),
    running: new Gauge({ name: 'redrafter:num_requests_running', help: 'Requests being generated', registers }),
    kvCacheUsage: new Gauge({ name: 'redrafter:kv_cache_usage_perc',
      help: 'Fraction (0-1) of the KV cache positions in use by running sequences', registers }),
    // An info-style gauge as vLLM's vllm:cache_config_info: value 1, the configuration in its labels. The EPP's
    // prefix-cache scorer reads block_size (tokens per KV block) and num_gpu_blocks (blocks in the pool; the protocol's
    // name, kept although our blocks are in CPU memory) to size its model of each replica's cache.
    cacheConfigInfo: new Gauge({ name: 'redrafter:cache_config_info',
      help: 'KV cache configuration (value 1): block_size tokens per block, num_gpu_blocks blocks in the KV pool',
      labelNames: ['block_size', 'num_gpu_blocks'], registers }),
  };
}

/** What `redrafter:cache_config_info` reports: tokens per KV block and the blocks the pool holds. */
export interface CacheConfig {
  blockSize: number;
  blocks: number;
}

/** Sets the one `redrafter:cache_config_info` series (a previous configuration's series is removed). */
export function setCacheConfig(metrics: ServerMetrics, config: CacheConfig): void {
  for (const [name, value] of [['blockSize', config.blockSize], ['blocks', config.blocks]] as const) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name}: expected an integer >= 1, got ${value}`);
  }
  metrics.cacheConfigInfo.reset();
  metrics.cacheConfigInfo.set({ block_size: String(config.blockSize), num_gpu_blocks: String(config.blocks) }, 1);
}
