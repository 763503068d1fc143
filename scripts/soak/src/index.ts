export { LagTracker } from './lag-tracker.js';
export { formatSoakSummary, writeSoakReport } from './soak-report.js';
export { renderSoakChart } from './soak-chart.js';
export {
  burstSchedule,
  DEFAULT_SOAK_OPTIONS,
  parseSoakArguments,
  soakUsage,
  validateSoakOptions,
  type SoakArguments,
  type SoakOptions,
} from './soak-options.js';
export type { BurstFigures, LagWindow, RssPoint, SoakCheck, SoakResult, SoakVerdict } from './soak-result.js';
export { runSoak, type SoakControl } from './soak-run.js';
export {
  analyzeBurstRecovery,
  analyzeGrowth,
  linearSlope,
  percentile,
  summarizeLag,
  type BurstRecovery,
  type GrowthAnalysis,
  type LagSample,
  type LagSummary,
} from './soak-statistics.js';
export { judgeSoak } from './soak-verdict.js';
export {
  DEFAULT_FLAKY_OPTIONS,
  flakySoakUsage,
  parseFlakySoakArguments,
  validateFlakySoakOptions,
  type FlakySoakArguments,
  type FlakySoakOptions,
} from './flaky-options.js';
export {
  chooseFlakyPlan,
  logUniform,
  pickDropKind,
  seededRandom,
  type DropPoint,
  type FlakyPlan,
} from './flaky-plan.js';
export { formatFlakySummary, writeFlakyReport } from './flaky-report.js';
export type { FlakySoakResult, ResourceSample, ResourceWindow } from './flaky-result.js';
export { runFlakySoak } from './flaky-run.js';
export { FlakyTally, classifyStream, classifyWriteCheckpoint } from './flaky-tally.js';
export { allowedRssGrowthMb, compareResources, judgeFlakySoak, summarizeWindow } from './flaky-verdict.js';
