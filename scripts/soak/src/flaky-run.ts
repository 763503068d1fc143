/**
 * One flaky-client soak, in order: the soak stack with a documents bucket every user syncs, a few
 * well-behaved clients and steady writes, a warm-up, a baseline window of samples (service RSS,
 * open fds, storage and source connections; taken at rest, writes paused), then flaky clients
 * started at a fixed rate for M minutes while the writes go on, a wait for the last of them, a
 * settle period and an after window at rest; then the good clients and a fresh one must sync
 * exactly, and the windows are compared.
 */
import { setMaxListeners } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ConnectionSampler } from './connection-sampler.js';
import { runFlakyConnection, type FlakyOutcome } from './flaky-client.js';
import { validateFlakySoakOptions, type FlakySoakOptions } from './flaky-options.js';
import { chooseFlakyPlan, seededRandom, type FlakyPlanOptions } from './flaky-plan.js';
import {
  FLAKY_RESULT_VERSION,
  type FlakyPhase,
  type FlakySoakResult,
  type GoodClientFigures,
  type ResourceSample,
} from './flaky-result.js';
import { FlakyTally } from './flaky-tally.js';
import { allowedRssGrowthMb, compareResources, judgeFlakySoak, peakOf, summarizeWindow } from './flaky-verdict.js';
import { heapGrowth, readHeapSnapshotSummary } from './heap-snapshot.js';
import { LagTracker } from './lag-tracker.js';
import { SoakClient } from './soak-client.js';
import type { SoakControl } from './soak-run.js';
import {
  cpuMeter,
  gitState,
  listenOverflows,
  loadAverage,
  machineFacts,
  meanOf,
  ownCpuSeconds,
  round,
  SOURCE_DATABASE,
  SoakStack,
  STORAGE_DATABASE,
} from './soak-stack.js';
import { summarizeLag, type LagSummary } from './soak-statistics.js';
import {
  documentsSql,
  FLAKY_SYNC_CONFIG,
  INITIAL_NOTICES,
  sleep,
  SOURCE_SCHEMA_SQL,
  SoakWriter,
  userName,
} from './soak-writer.js';

const roundSummary = (s: LagSummary): LagSummary => ({
  count: s.count,
  p50: round(s.p50),
  p95: round(s.p95),
  p99: round(s.p99),
  max: round(s.max),
});

const clock = (seconds: number) =>
  `${String(Math.floor(seconds / 60)).padStart(2, '0')}:${String(Math.floor(seconds % 60)).padStart(2, '0')}`;

/** Steady writes and global-bucket updates until `stop()`, which resolves once they have stopped. */
function startWrites(writer: SoakWriter, options: FlakySoakOptions, runSignal: AbortSignal): { stop(): Promise<void> } {
  const stop = new AbortController();
  const onRunAbort = () => stop.abort();
  runSignal.addEventListener('abort', onRunAbort, { once: true });
  const steady = writer.runSteady({
    rowsPerSecond: options.writeRate,
    transactionsPerSecond: options.transactionsPerSecond,
    signal: stop.signal,
  });
  const notices = (async () => {
    if (options.noticeEverySeconds <= 0) return;
    for (;;) {
      await sleep(options.noticeEverySeconds * 1000, stop.signal);
      if (stop.signal.aborted) return;
      await writer.updateNotice();
    }
  })();
  const done = Promise.all([steady, notices]).then(() => runSignal.removeEventListener('abort', onRunAbort));
  return {
    stop: () => {
      stop.abort();
      return done;
    },
  };
}

export async function runFlakySoak(input: FlakySoakOptions, control: SoakControl = {}): Promise<FlakySoakResult> {
  const options = validateFlakySoakOptions({ ...input });
  const log = control.log ?? (() => undefined);
  const now = () => performance.now();
  const startedAt = new Date();
  const loadAverageAtStart = loadAverage();
  const seed = options.seed > 0 ? options.seed : 1 + Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  const stopRun = new AbortController();
  const onOuterAbort = () => stopRun.abort();
  control.signal?.addEventListener('abort', onOuterAbort, { once: true });

  const stack = new SoakStack();
  const heapDir = options.heapSnapshots ? await mkdtemp(path.join(os.tmpdir(), 'soak-heap-')) : undefined;
  const lag = new LagTracker();
  let writer: SoakWriter | undefined;
  let seedRows = 0;
  const clients: SoakClient[] = [];
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const connections = new ConnectionSampler();
  let sampling: NodeJS.Timeout | undefined;
  let progress: NodeJS.Timeout | undefined;
  const dropAll = new AbortController();
  // Every open flaky connection listens for the end of the run.
  setMaxListeners(0, dropAll.signal);
  const open = new Set<Promise<void>>();
  try {
    const service = await stack.start({
      schemaSql: SOURCE_SCHEMA_SQL + documentsSql(options.documentRows, options.documentBytes),
      syncConfig: FLAKY_SYNC_CONFIG,
      logLevel: options.logLevel,
      ...(heapDir ? { heapSnapshotDir: heapDir } : {}),
      onServiceExit: () => stopRun.abort(),
      log,
      // Rows for every user before the service starts, so the initial copy holds them all.
      beforeService: async (sourceUrl) => {
        writer = new SoakWriter({
          sourceUrl,
          users: options.users,
          probes: options.goodClients,
          payloadBytes: 100,
          lag,
          now,
        });
        await writer.open();
        seedRows = options.users * options.rowsPerUser;
        if (seedRows > 0) await writer.writeBurst(seedRows, Math.ceil(seedRows / 5000));
      },
    });
    const serviceSampler = stack.serviceSampler!;
    const tokenSeconds = Math.min(
      86_000,
      Math.ceil(
        options.warmupSeconds +
          2 * options.windowSeconds +
          options.minutes * 60 +
          options.maxLifeSeconds +
          options.settleSeconds +
          options.drainTimeoutSeconds +
          3600,
      ),
    );
    const tokenFor = (user: string) => service.cachedToken(user, tokenSeconds);
    const goodClient = (user: string, probe: LagTracker, reportNotices: boolean) =>
      new SoakClient({
        endpoint: service.endpoint,
        userId: user,
        token: () => tokenFor(user),
        agent,
        now,
        probe,
        reportNotices,
      });

    // Well-behaved clients: probes (checksums verified, lag measured) of the first users.
    const mark = now();
    log(`Documents: ${options.documentRows} rows of ${options.documentBytes} bytes; seed: ${seed}.`);
    log(`Connecting ${options.goodClients} well-behaved clients...`);
    for (let i = 0; i < options.goodClients; i++) clients.push(goodClient(userName(i), lag, i === 0));
    for (const client of clients) client.start();
    const connectDeadline = now() + 120_000;
    while (clients.some((c) => c.firstCompleteAt === undefined) && !stopRun.signal.aborted) {
      if (now() > connectDeadline) {
        throw new Error(
          `the well-behaved clients did not complete their first sync within 120 s: ${clients
            .flatMap((c) => c.problems)
            .slice(0, 3)
            .join('; ')}`,
        );
      }
      await sleep(100, stopRun.signal);
    }
    const goodClientsSeconds = round((now() - mark) / 1000);

    // Steady writes (and global-bucket updates) from here on, paused for each window (quietThenWindow).
    await connections.open(stack.storageUrl);
    let writes = startWrites(writer!, options, stopRun.signal);

    // Samples of the service every second, each tagged with the phase it was taken in.
    const t0 = now();
    let phase: FlakyPhase = 'warmup';
    const series: ResourceSample[] = [];
    const cpu = {
      service: cpuMeter(() => serviceSampler.sample()?.cpuSeconds),
      postgres: cpuMeter(() => stack.postgresSampler?.sample()?.cpuSeconds),
      soak: cpuMeter(ownCpuSeconds),
    };
    let sampleError: string | undefined;
    let samplesDone = Promise.resolve();
    const takeSample = async () => {
      const at = phase;
      const s = serviceSampler.sample();
      const fds = serviceSampler.openFds();
      const serviceCpuPercent = cpu.service();
      const postgresCpuPercent = cpu.postgres();
      const soakCpuPercent = cpu.soak();
      try {
        const byDatabase = await connections.sample();
        if (!s || fds === undefined) return;
        series.push({
          t: round((now() - t0) / 1000, 2),
          phase: at,
          rssMb: round(s.rssMb),
          fds,
          storageConnections: byDatabase.get(STORAGE_DATABASE) ?? 0,
          sourceConnections: byDatabase.get(SOURCE_DATABASE) ?? 0,
          openFlaky: open.size,
          serviceCpuPercent,
          postgresCpuPercent,
          soakCpuPercent,
        });
      } catch (e) {
        sampleError ??= (e as Error).message;
      }
    };
    sampling = setInterval(() => {
      samplesDone = samplesDone.then(takeSample);
    }, options.sampleEverySeconds * 1000);

    const tally = new FlakyTally();
    let started = 0;
    let skipped = 0;
    const last = () => series[series.length - 1];
    progress = setInterval(() => {
      const s = last();
      const f = tally.figures;
      log(
        `[${clock((now() - t0) / 1000)} ${phase}] flaky ${started.toLocaleString('en-US')} started, ${open.size} open, ` +
          `${f.droppedAt.midData.toLocaleString('en-US')} dropped mid-data, ${(f.bytesRead / 1048576).toFixed(0)} MiB read, ` +
          `${f.statuses['429'] ?? 0} x 429, ${f.failures} failures; service RSS ${s?.rssMb.toFixed(0) ?? '?'} MB, ` +
          `${s?.fds ?? '?'} fds, storage connections ${s?.storageConnections ?? '?'}, ` +
          `CPU service ${s?.serviceCpuPercent ?? '?'}% postgres ${s?.postgresCpuPercent ?? '?'}% soak ${s?.soakCpuPercent ?? '?'}%`,
      );
    }, options.progressEverySeconds * 1000);

    // A window is taken at rest: the writes pause, connections opened for them idle out of the
    // pools, then the service is sampled with only the good clients connected (and idle).
    const quietThenWindow = async (window: 'baseline' | 'after') => {
      await writes.stop();
      phase = 'quiet';
      await sleep(options.quietSeconds * 1000, stopRun.signal);
      phase = window;
      await sleep(options.windowSeconds * 1000, stopRun.signal);
      phase = 'settle';
      await samplesDone;
    };
    log(
      `Warm-up ${options.warmupSeconds} s, ${options.quietSeconds} s without writes, ` +
        `then a baseline window of ${options.windowSeconds} s...`,
    );
    await sleep(options.warmupSeconds * 1000, stopRun.signal);
    await quietThenWindow('baseline');
    const baseline = summarizeWindow(series.filter((s) => s.phase === 'baseline'));
    log(
      `Baseline: RSS ${baseline.rssMb.toFixed(1)} MB, ${baseline.fds} fds, ` +
        `${baseline.storageConnections} storage and ${baseline.sourceConnections} source connections.`,
    );

    // A heap snapshot runs a full GC first: RSS right after it is the service without its garbage.
    const heapState = async () => {
      const file = await service.heapSnapshot();
      const rssAfterGcMb = round(serviceSampler.sample()?.rssMb ?? 0);
      const summary = await readHeapSnapshotSummary(file);
      await rm(file, { force: true });
      return { summary, rssAfterGcMb };
    };
    const heapBefore = heapDir && !stopRun.signal.aborted ? await heapState() : undefined;
    if (heapBefore)
      log(`Heap after a full GC: ${heapBefore.summary.totalMb} MB; RSS then ${heapBefore.rssAfterGcMb} MB.`);

    writes = startWrites(writer!, options, stopRun.signal);
    // Flaky clients, open loop: started on schedule whatever the service's pace, up to --max-open at once.
    phase = 'flaky';
    log(`Flaky clients: ${options.rate}/s for ${options.minutes} min...`);
    const planOptions: FlakyPlanOptions = {
      users: options.users,
      maxBytes: options.maxBytes,
      maxStallMs: options.maxStallSeconds * 1000,
      writeCheckpointShare: options.writeCheckpointShare,
      gzipShare: options.gzipShare,
    };
    const startOne = () => {
      const plan = chooseFlakyPlan(random, planOptions);
      const user = userName(plan.user);
      const run = (async () => {
        let outcome: FlakyOutcome;
        try {
          outcome = await runFlakyConnection(plan, {
            endpoint: service.endpoint,
            token: await tokenFor(user),
            agent,
            maxLifeMs: options.maxLifeSeconds * 1000,
            signal: dropAll.signal,
          });
        } catch (e) {
          outcome = {
            plan,
            status: undefined,
            bytes: 0,
            end: 'error',
            error: `soak: ${(e as Error).message}`,
            cappedByLifetime: false,
            durationMs: 0,
          };
        }
        tally.record(outcome);
      })();
      const tracked: Promise<void> = run.finally(() => open.delete(tracked));
      open.add(tracked);
    };
    const overflowsBefore = listenOverflows();
    const flakyStart = now();
    const flakyMs = options.minutes * 60_000;
    while (!stopRun.signal.aborted && now() - flakyStart < flakyMs) {
      const due = Math.floor(((now() - flakyStart) / 1000) * options.rate);
      for (; started + skipped < due;) {
        if (open.size >= options.maxOpen) skipped++;
        else {
          started++;
          startOne();
        }
      }
      await sleep(10, stopRun.signal);
    }
    const flakySeconds = (now() - flakyStart) / 1000;
    const flakyEnd = now();
    phase = 'finishing';
    log(`Flaky clients stopped after ${started.toLocaleString('en-US')}; waiting for the last ${open.size} to drop...`);
    const finishDeadline = now() + (options.maxLifeSeconds + 5) * 1000;
    while (open.size > 0 && now() < finishDeadline && !stopRun.signal.aborted) await sleep(100);
    dropAll.abort();
    await Promise.all([...open]);
    const lastEnded = now();
    const finishSeconds = round((lastEnded - flakyEnd) / 1000);
    const overflowsAfter = listenOverflows();

    phase = 'settle';
    log(
      `Settling ${options.settleSeconds} s, ${options.quietSeconds} s without writes, ` +
        `then an after window of ${options.windowSeconds} s...`,
    );
    await sleep(options.settleSeconds * 1000, stopRun.signal);
    await quietThenWindow('after');
    let after = summarizeWindow(series.filter((s) => s.phase === 'after'));
    // Work queued for clients long gone can take a while to drain (storage reads, write
    // checkpoints, and the pools' idle timeouts after them): while the window is above the
    // baseline, another one follows, up to --settle-max after the last flaky connection ended.
    // What leaks stays above it in every window.
    let afterWindows = 1;
    while (
      !stopRun.signal.aborted &&
      !compareResources(baseline, after, peakOf(series), options).every((c) => c.passed) &&
      now() + options.windowSeconds * 1000 - lastEnded <= options.settleMaxSeconds * 1000
    ) {
      const from = series.length;
      phase = 'after';
      await sleep(options.windowSeconds * 1000, stopRun.signal);
      phase = 'settle';
      await samplesDone;
      after = summarizeWindow(series.slice(from).filter((s) => s.phase === 'after'));
      afterWindows++;
    }
    const afterWindowEndSeconds = round((now() - lastEnded) / 1000);
    clearInterval(sampling);
    clearInterval(progress);
    await samplesDone;
    const peak = peakOf(series);
    const storageBackendsAfter =
      after.storageConnections > baseline.storageConnections
        ? await connections.backends(STORAGE_DATABASE).catch(() => undefined)
        : undefined;
    const sourceBackendsAfter =
      after.sourceConnections > baseline.sourceConnections
        ? await connections.backends(SOURCE_DATABASE).catch(() => undefined)
        : undefined;
    const heapAfter = heapBefore && !stopRun.signal.aborted ? await heapState() : undefined;
    const interrupted = stopRun.signal.aborted;
    if (sampleError) log(`A sample failed: ${sampleError}`);

    // Writes stop; every good client, and one started now from nothing, must sync exactly.
    await writes.stop();
    const expectedOps = (user: string) =>
      writer!.rowsByUser[Number(user.slice(1))]! + INITIAL_NOTICES + writer!.noticeUpdates + options.documentRows;
    const freshUser = userName(options.goodClients % options.users);
    // A probe of its own tracker: its checksums are verified; the rows it sees were stamped for the good clients.
    const fresh = goodClient(freshUser, new LagTracker(), false);
    fresh.start();
    const all = [...clients, fresh];
    const figures = (c: SoakClient, newest: bigint): GoodClientFigures => ({
      user: c.userId,
      complete: c.problemCount === 0 && BigInt(c.completedOpId) === newest && c.ops === expectedOps(c.userId),
      ops: c.ops,
      expectedOps: expectedOps(c.userId),
      connects: c.connects,
      problems: c.problems,
    });
    const newestOf = () => all.reduce((m, c) => (BigInt(c.completedOpId) > m ? BigInt(c.completedOpId) : m), 0n);
    const drainStart = now();
    if (!interrupted) log('Writes stopped; waiting for the good clients and a fresh one to sync...');
    while (!stopRun.signal.aborted && now() - drainStart < options.drainTimeoutSeconds * 1000) {
      const newest = newestOf();
      if (all.every((c) => figures(c, newest).complete)) break;
      await sleep(250, stopRun.signal);
    }
    const newest = newestOf();
    const goodClients = clients.map((c) => figures(c, newest));
    const freshClient = figures(fresh, newest);
    for (const c of all) c.stop();
    clients.push(fresh);

    const exitedDuringRun = service.exitedUnexpectedly;
    const exitCode = await service.stop();
    const f = tally.summary();
    const partial: Omit<FlakySoakResult, 'verdict'> = {
      version: FLAKY_RESULT_VERSION,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine: machineFacts(loadAverageAtStart, stack.postgresVersion),
      git: gitState(),
      config: options,
      seed,
      interrupted: interrupted || flakySeconds < options.minutes * 60 - 1,
      setup: { ...stack.setup, goodClientsSeconds },
      flaky: {
        ...f,
        headersMs: roundSummary(f.headersMs),
        seconds: round(flakySeconds),
        rateAsked: options.rate,
        rateAchieved: round(started / Math.max(1e-3, flakySeconds)),
        skippedAtMaxOpen: skipped,
        ...(overflowsBefore !== undefined && overflowsAfter !== undefined
          ? { listenOverflows: overflowsAfter - overflowsBefore }
          : {}),
        finishSeconds,
      },
      writes: { rows: writer!.rowsWritten - seedRows, noticeUpdates: writer!.noticeUpdates, errors: writer!.errors },
      goodClientLag: roundSummary(
        summarizeLag(
          lag.samples.filter((s) => s.committedAt >= flakyStart && s.committedAt <= flakyEnd).map((s) => s.lagMs),
        ),
      ),
      resources: {
        baseline,
        peak,
        after,
        rssAllowedMb: round(allowedRssGrowthMb(baseline.rssMb, options)),
        afterWindows,
        afterWindowEndSeconds,
        ...(storageBackendsAfter ? { storageBackendsAfter } : {}),
        ...(sourceBackendsAfter ? { sourceBackendsAfter } : {}),
        ...(heapBefore && heapAfter
          ? {
              heap: {
                baseline: { heapMb: heapBefore.summary.totalMb, rssAfterGcMb: heapBefore.rssAfterGcMb },
                after: { heapMb: heapAfter.summary.totalMb, rssAfterGcMb: heapAfter.rssAfterGcMb },
                growth: heapGrowth(heapBefore.summary, heapAfter.summary),
              },
            }
          : {}),
      },
      goodClients,
      freshClient,
      service: { exitCode, exitedDuringRun, log: service.log },
      cpuPercent: {
        service: meanOf(series.filter((s) => s.phase === 'flaky').map((s) => s.serviceCpuPercent)),
        postgres: meanOf(series.filter((s) => s.phase === 'flaky').map((s) => s.postgresCpuPercent)),
        soak: meanOf(series.filter((s) => s.phase === 'flaky').map((s) => s.soakCpuPercent)),
      },
      series,
    };
    return { ...partial, verdict: judgeFlakySoak(partial) };
  } finally {
    control.signal?.removeEventListener('abort', onOuterAbort);
    clearInterval(sampling);
    clearInterval(progress);
    dropAll.abort();
    await Promise.all([...open]);
    for (const client of clients) client.stop();
    agent.destroy();
    await connections.close();
    await writer?.close();
    await stack.stop(control.serviceLogCopy ? { serviceLogCopy: control.serviceLogCopy } : {});
    if (heapDir) await rm(heapDir, { recursive: true, force: true });
  }
}
