/** The load op: opens a model's session in the worker ahead of its first task. */
import type { ModelRef } from '../../core/types.js';

export interface LoadTask { op: 'load'; model: ModelRef }
export interface LoadResult { inputs: string[]; outputs: string[] }
