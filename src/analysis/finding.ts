// Findings live in the model (the validation stage, status and analysis all read them).
export * from '../model/finding.js';
