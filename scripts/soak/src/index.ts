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
