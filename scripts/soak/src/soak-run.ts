/**
 * One soak run, in order: a throwaway Postgres (source and storage databases), the schema, the
 * built service, the clients (each synced once before the load starts), then M minutes of
 * steady writes with bursts while RSS and lag are sampled, a drain in which every client must
 * catch up exactly, and the analysis into figures and a verdict. Everything started is stopped.
 */
import http from 'node:http';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { LagTracker } from './lag-tracker.js';
import { SoakClient } from './soak-client.js';
import { burstSchedule, validateSoakOptions, type SoakOptions } from './soak-options.js';
import {
  SOAK_RESULT_VERSION,
  type BurstFigures,
  type LagWindow,
  type RssPoint,
  type SoakResult,
} from './soak-result.js';
import {
  cpuMeter,
  gitState,
  loadAverage,
  machineFacts,
  meanOf,
  ownCpuSeconds,
  round,
  SOURCE_DATABASE,
  SoakStack,
  STORAGE_DATABASE,
} from './soak-stack.js';
import { analyzeBurstRecovery, analyzeGrowth, summarizeLag, type LagSample } from './soak-statistics.js';
import { judgeSoak } from './soak-verdict.js';
import { INITIAL_NOTICES, sleep, SOURCE_SCHEMA_SQL, SoakWriter, SYNC_CONFIG, userName } from './soak-writer.js';

export interface SoakControl {
  /** Stops the run early (it is then reported, and fails, as interrupted). */
  signal?: AbortSignal;
  /** Progress lines (default: none). */
  log?(line: string): void;
  /** Copy the service's log here before the run directory is removed. */
  serviceLogCopy?: string;
}

export async function runSoak(input: SoakOptions, control: SoakControl = {}): Promise<SoakResult> {
  const options = validateSoakOptions({ ...input });
  const log = control.log ?? (() => undefined);
  const now = () => performance.now();
  const startedAt = new Date();
  const loadAverageAtStart = loadAverage();
  const stopRun = new AbortController();
  const onOuterAbort = () => stopRun.abort();
  control.signal?.addEventListener('abort', onOuterAbort, { once: true });

  const stack = new SoakStack();
  let writer: SoakWriter | undefined;
  const clients: SoakClient[] = [];
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  try {
    const service = await stack.start({
      schemaSql: SOURCE_SCHEMA_SQL,
      syncConfig: SYNC_CONFIG,
      logLevel: options.logLevel,
      onServiceExit: () => stopRun.abort(),
      log,
    });
    const sourceUrl = stack.sourceUrl;
    const serviceSampler = stack.serviceSampler!;
    const postgresSampler = stack.postgresSampler;

    // Clients: one token per user, shared by its clients (SoakService.cachedToken). By default
    // tokens outlive the run, up to the service's one-day cap.
    const mark = now();
    log(`Connecting ${options.clients} clients (${options.probes} probes)...`);
    const lag = new LagTracker();
    const tokenSeconds =
      options.tokenSeconds > 0
        ? options.tokenSeconds
        : Math.min(86_000, Math.ceil(options.minutes * 60 + options.drainTimeoutSeconds + 3600));
    for (let i = 0; i < options.clients; i++) {
      const user = userName(i % options.users);
      clients.push(
        new SoakClient({
          endpoint: service.endpoint,
          userId: user,
          token: () => service.cachedToken(user, tokenSeconds),
          agent,
          now,
          ...(i < options.probes ? { probe: lag, reportNotices: i === 0 } : {}),
        }),
      );
    }
    // Ramp up in groups so the first sync of hundreds of clients is not one thundering herd.
    for (let i = 0; i < clients.length; i += 25) {
      for (const client of clients.slice(i, i + 25)) client.start();
      await sleep(50, stopRun.signal);
    }
    const connectDeadline = now() + 60_000 + options.clients * 200;
    while (clients.some((c) => c.firstCompleteAt === undefined) && !stopRun.signal.aborted) {
      if (now() > connectDeadline) {
        const waiting = clients.filter((c) => c.firstCompleteAt === undefined);
        throw new Error(
          `${waiting.length} of ${options.clients} clients did not complete their first sync within ` +
            `${Math.round((connectDeadline - mark) / 1000)} s; first problems: ${waiting
              .flatMap((c) => c.problems)
              .slice(0, 3)
              .join('; ')}`,
        );
      }
      await sleep(100, stopRun.signal);
    }
    const clientsSeconds = (now() - mark) / 1000;
    if (service.exitedUnexpectedly)
      throw new Error(`the service exited while clients connected; see ${service.logFile}`);

    // Load.
    writer = new SoakWriter({
      sourceUrl,
      users: options.users,
      probes: options.probes,
      payloadBytes: options.payloadBytes,
      lag,
      now,
    });
    await writer.open();
    const runSeconds = options.minutes * 60;
    const transactionsBefore = await stack.transactionCounts();
    const loadStart = now();
    const elapsed = () => (now() - loadStart) / 1000;
    log(`Load started: ${options.rate} rows/s for ${options.minutes} min.`);
    const loadStop = new AbortController();
    const stopLoad = () => loadStop.abort();
    stopRun.signal.addEventListener('abort', stopLoad, { once: true });
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();

    // Sampling: RSS and CPU of the processes, lag of the rows that arrived since the last sample.
    const rssSeries: RssPoint[] = [];
    const lagSeries: LagWindow[] = [];
    const cpu = {
      service: cpuMeter(() => serviceSampler.sample()?.cpuSeconds),
      postgres: cpuMeter(() => postgresSampler?.sample()?.cpuSeconds),
      soak: cpuMeter(ownCpuSeconds),
    };
    let samplesSeen = 0;
    const sample = () => {
      const at = now();
      const s = serviceSampler.sample();
      if (s) {
        rssSeries.push({
          t: round(elapsed(), 2),
          serviceMb: round(s.rssMb),
          soakMb: round(process.memoryUsage.rss() / 1048576),
          serviceCpuPercent: cpu.service(),
          soakCpuPercent: cpu.soak() ?? 0,
          postgresCpuPercent: cpu.postgres(),
        });
      }
      const fresh = lag.samples.slice(samplesSeen).map((x) => x.lagMs);
      samplesSeen = lag.samples.length;
      const summary = summarizeLag(fresh);
      lagSeries.push({
        t: round(elapsed(), 2),
        count: summary.count,
        p50: round(summary.p50),
        p95: round(summary.p95),
        max: round(summary.max),
        oldestPendingMs: round(lag.oldestPendingMs(at)),
      });
    };
    sample();
    const sampler = setInterval(sample, options.sampleEverySeconds * 1000);

    let progressRows = 0;
    let progressSamples = 0;
    const progress = setInterval(() => {
      const rows = writer!.rowsWritten;
      const recent = summarizeLag(lag.samples.slice(progressSamples).map((x) => x.lagMs));
      progressSamples = lag.samples.length;
      const rss = rssSeries[rssSeries.length - 1];
      const t = Math.round(elapsed());
      log(
        `[${String(Math.floor(t / 60)).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}] ` +
          `rows ${rows.toLocaleString('en-US')} (+${(rows - progressRows).toLocaleString('en-US')}), ` +
          `ops delivered ${clients.reduce((n, c) => n + c.ops, 0).toLocaleString('en-US')}, ` +
          `service RSS ${rss?.serviceMb.toFixed(0) ?? '?'} MB, CPU service ${rss?.serviceCpuPercent ?? '?'}% ` +
          `postgres ${rss?.postgresCpuPercent ?? '?'}% soak ${rss?.soakCpuPercent ?? '?'}%, ` +
          `lag p50 ${recent.p50.toFixed(0)} ms p95 ${recent.p95.toFixed(0)} ms max ${recent.max.toFixed(0)} ms, ` +
          `oldest undelivered ${(lag.oldestPendingMs(now()) / 1000).toFixed(1)} s`,
      );
      progressRows = rows;
    }, options.progressEverySeconds * 1000);

    const steady = writer.runSteady({
      rowsPerSecond: options.rate,
      transactionsPerSecond: options.transactionsPerSecond,
      signal: loadStop.signal,
    });
    const bursts = (async () => {
      if (options.burstRows <= 0) return;
      for (const at of burstSchedule(runSeconds, options.burstEverySeconds, options.recoveryWindowSeconds)) {
        await sleep(at * 1000 - (now() - loadStart), loadStop.signal);
        if (loadStop.signal.aborted) return;
        const burst = await writer!.writeBurst(options.burstRows, options.burstTransactions);
        log(
          `Burst at ${Math.round(at)} s: ${burst.rows.toLocaleString('en-US')} rows in ${burst.transactions} transactions, ` +
            `written in ${((burst.endedAt - burst.startedAt) / 1000).toFixed(1)} s`,
        );
      }
    })();
    const notices = (async () => {
      if (options.noticeEverySeconds <= 0) return;
      for (;;) {
        await sleep(options.noticeEverySeconds * 1000, loadStop.signal);
        if (loadStop.signal.aborted) return;
        await writer!.updateNotice();
      }
    })();
    await sleep(runSeconds * 1000, loadStop.signal);
    loadStop.abort();
    await Promise.all([steady, bursts, notices]);
    const loadSeconds = elapsed();
    const transactionsAfter = await stack.transactionCounts();
    const transactionRate = (db: string) =>
      Math.round(((transactionsAfter.get(db) ?? 0) - (transactionsBefore.get(db) ?? 0)) / Math.max(1, loadSeconds));
    clearInterval(sampler);
    clearInterval(progress);
    sample();
    loopDelay.disable();
    stopRun.signal.removeEventListener('abort', stopLoad);

    // Drain: every client reaches the newest checkpoint with exactly its ops, and every probe row arrives.
    const drainStart = now();
    const expectedOps = (c: SoakClient) =>
      writer!.rowsByUser[Number(c.userId.slice(1))]! + INITIAL_NOTICES + writer!.noticeUpdates;
    const behind = () => {
      const newest = clients.reduce((m, c) => (BigInt(c.completedOpId) > m ? BigInt(c.completedOpId) : m), 0n);
      return {
        clientsBehind: clients.filter((c) => BigInt(c.completedOpId) !== newest).length,
        wrong: clients.filter((c) => c.ops !== expectedOps(c)),
        pending: lag.pending,
      };
    };
    let state = behind();
    if (!stopRun.signal.aborted) log('Writes stopped; waiting for every client to catch up...');
    while (!stopRun.signal.aborted && now() - drainStart < options.drainTimeoutSeconds * 1000) {
      state = behind();
      if (state.clientsBehind === 0 && state.wrong.length === 0 && state.pending === 0) break;
      await sleep(250, stopRun.signal);
    }
    state = behind();
    const drainSeconds = (now() - drainStart) / 1000;
    const caughtUp = state.clientsBehind === 0 && state.wrong.length === 0 && state.pending === 0;
    const undelivered = lag.undeliveredCommits();

    // Stop the clients and the service before analysing (the service's exit code is a figure).
    for (const client of clients) client.stop();
    const exitedDuringRun = service.exitedUnexpectedly;
    const exitCode = await service.stop();

    // Analysis.
    const toSeconds = (at: number) => (at - loadStart) / 1000;
    const burstFigures: BurstFigures[] = writer.bursts.map((b, index) => {
      const recovery = analyzeBurstRecovery(b, lag.samples, {
        thresholdMs: options.lagThresholdMs,
        windowMs: options.recoveryWindowSeconds * 1000,
        undeliveredCommits: undelivered,
      });
      const before = lag.samples.filter((x) => x.committedAt < b.startedAt && x.committedAt >= b.startedAt - 30_000);
      return {
        index,
        atSeconds: round(toSeconds(b.startedAt), 2),
        preBurstP95Ms: round(summarizeLag(before.map((x) => x.lagMs)).p95),
        rows: b.rows,
        transactions: b.transactions,
        writeSeconds: round((b.endedAt - b.startedAt) / 1000, 2),
        peakLagMs: round(recovery.peakLagMs),
        recoverySeconds: recovery.recoverySeconds === undefined ? undefined : round(recovery.recoverySeconds, 2),
        recovered: recovery.recovered,
        lagSamples: recovery.samples,
      };
    });
    // Rows committed from a burst's start until it recovered (or its window ended) are "after bursts".
    const burstSpans = writer.bursts.map((b, i) => ({
      from: b.startedAt,
      to: b.endedAt + (burstFigures[i]!.recoverySeconds ?? options.recoveryWindowSeconds) * 1000,
    }));
    const inBurst = (s: LagSample) => burstSpans.some((span) => s.committedAt >= span.from && s.committedAt <= span.to);
    const serviceMb = rssSeries.map((p) => p.serviceMb);
    const soakMb = rssSeries.map((p) => p.soakMb);
    const memoryOf = (values: number[]) => ({
      startMb: values[0] ?? 0,
      endMb: values[values.length - 1] ?? 0,
      maxMb: Math.max(0, ...values),
    });
    const unexpectedEnds = clients.reduce((n, c) => n + c.unexpectedEnds, 0);
    const partial: Omit<SoakResult, 'verdict'> = {
      version: SOAK_RESULT_VERSION,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine: machineFacts(loadAverageAtStart, stack.postgresVersion),
      git: gitState(),
      config: options,
      interrupted: loadSeconds < runSeconds - 1,
      setup: {
        postgresSeconds: stack.setup.postgresSeconds,
        serviceSeconds: stack.setup.serviceSeconds,
        clientsSeconds: round(clientsSeconds),
      },
      load: {
        seconds: round(loadSeconds),
        rowsWritten: writer.rowsWritten,
        steadyRows: writer.steadyRows,
        steadyTransactions: writer.steadyTransactions,
        skippedTransactions: writer.skippedTransactions,
        burstRows: writer.burstRows,
        noticeUpdates: writer.noticeUpdates,
        steadyRowsPerSecond: round(writer.steadyRows / Math.max(1, loadSeconds)),
        writeErrors: writer.errors,
      },
      delivery: {
        opsDelivered: clients.reduce((n, c) => n + c.ops, 0),
        lines: clients.reduce((n, c) => n + c.lines, 0),
        checkpointsCompleted: clients.reduce((n, c) => n + c.checkpointsCompleted, 0),
        connects: clients.reduce((n, c) => n + c.connects, 0),
        tokenExpiries: clients.reduce((n, c) => n + c.tokenExpiries, 0),
        unexpectedEnds,
        protocolProblems: clients.reduce((n, c) => n + c.problemCount, 0),
        problems: clients.flatMap((c) => c.problems.map((p) => `${c.userId}: ${p}`)).slice(0, 10),
        caughtUp,
        drainSeconds: round(drainSeconds),
        clientsBehind: state.clientsBehind,
        clientsWithWrongOps: state.wrong.length,
        wrongOps: state.wrong.slice(0, 5).map((c) => `${c.userId}: ${c.ops} ops, expected ${expectedOps(c)}`),
        undeliveredProbeRows: undelivered.length,
        unexpectedProbeRows: lag.unexpected,
      },
      lag: {
        overall: summarizeLag(lag.samples.map((s) => s.lagMs)),
        steady: summarizeLag(lag.samples.filter((s) => !inBurst(s)).map((s) => s.lagMs)),
        burst: summarizeLag(lag.samples.filter(inBurst).map((s) => s.lagMs)),
      },
      bursts: burstFigures,
      memory: {
        service: {
          ...memoryOf(serviceMb),
          growth: analyzeGrowth(
            rssSeries.map((p) => ({ t: p.t, mb: p.serviceMb })),
            loadSeconds,
            {
              slopeMbPerMinute: options.rssSlopeLimitMbPerMinute,
              growthMb: options.rssGrowthLimitMb,
              growthRatio: 0.25,
            },
          ),
        },
        soak: memoryOf(soakMb),
      },
      databaseTransactionsPerSecond: {
        source: transactionRate(SOURCE_DATABASE),
        storage: transactionRate(STORAGE_DATABASE),
      },
      cpuPercent: {
        service: meanOf(rssSeries.map((p) => p.serviceCpuPercent)),
        postgres: meanOf(rssSeries.map((p) => p.postgresCpuPercent)),
        soak: meanOf(rssSeries.map((p) => p.soakCpuPercent)),
      },
      soakEventLoopDelayMs: {
        p50: round(loopDelay.percentile(50) / 1e6),
        p99: round(loopDelay.percentile(99) / 1e6),
        max: round(loopDelay.max / 1e6),
      },
      service: { exitCode, exitedDuringRun, log: service.log },
      series: { rss: rssSeries, lag: lagSeries },
    };
    return { ...partial, verdict: judgeSoak(partial) };
  } finally {
    control.signal?.removeEventListener('abort', onOuterAbort);
    for (const client of clients) client.stop();
    agent.destroy();
    await writer?.close();
    await stack.stop(control.serviceLogCopy ? { serviceLogCopy: control.serviceLogCopy } : {});
  }
}
