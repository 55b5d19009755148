// One speculation controller per loaded drafter and decoding mode, so that every sequence decoded with that drafter
// starts from what earlier ones measured (costs) and saw (acceptance). A controller starts from `saved` state (the
// tuning file, written by `redrafter tune` and the CLI) where it is usable, else from a calibration run on first use.

import { createBeamSearch, type DeviceBeamSearch } from '../drafter/beam-search.js';
import type { LoadedDrafter, LoadedModel } from './load.js';
import { createAcceptanceCounts, createSpeculationController, type AcceptanceCounts, type SpeculationController,
} from './controller.js';
import {
  calibrateCosts, calibrateCostsAsync, createSpeculationCosts, CONTROLLER_MAX_LENGTH, CONTROLLER_WIDTHS,
  type SpeculationCosts,
  type SpeculationCostsJson,
} from './speculation-costs.js';
import type { AcceptanceCountsJson, ControllerState, DecodingMode } from './tuning.js';
import { describeMachine } from './benchmark.js';

interface DrafterControllers {
  /** This process's calibration of the drafter on its model, made on first need. */
  calibration?: SpeculationCostsJson;
  byMode: Map<DecodingMode, SpeculationController>;
}

const controllers = new WeakMap<LoadedDrafter, DrafterControllers>();

export interface ControllerHandle {
  controller: SpeculationController;
  /** Seconds spent calibrating in this call (0 unless this call calibrated). */
  calibrationSeconds: number;
}

/** Saved costs, or undefined when they are missing or do not fit this version's tables (then: calibrate). */
function usableCosts(saved: ControllerState | undefined): SpeculationCosts | undefined {
  if (!saved?.costs) return undefined;
  try {
    return createSpeculationCosts(saved.costs);
  } catch {
    return undefined;
  }
}

function usableAcceptance(json: AcceptanceCountsJson | undefined): AcceptanceCounts {
  const counts = createAcceptanceCounts();
  const fits = (values: unknown): values is number[] => Array.isArray(values) && values.length === counts.trials.length &&
    values.every((v) => typeof v === 'number' && v >= 0);
  if (json && fits(json.trials) && fits(json.successes) && json.successes.every((s, i) => s <= json.trials[i] + 1e-9)) {
    counts.trials.set(json.trials);
    counts.successes.set(json.successes);
  }
  return counts;
}

/** The controller of `drafter` on `loaded` for `mode`, made on first use from `saved` state or a calibration. */
export function speculationController(loaded: LoadedModel, drafter: LoadedDrafter, mode: DecodingMode,
  saved?: ControllerState): ControllerHandle {
  let entry = controllers.get(drafter);
  if (!entry) {
    entry = { byMode: new Map() };
    controllers.set(drafter, entry);
  }
  const existing = entry.byMode.get(mode);
  if (existing) return { controller: existing, calibrationSeconds: 0 };
  let calibrationSeconds = 0;
  let costs = usableCosts(saved);
  if (!costs) {
    if (!entry.calibration && loaded.model.forwardSequencesAsync) {
      throw new Error('speculation controller: this model\'s forward is asynchronous; await ' +
        'prepareSpeculationController(loaded, drafter) first');
    }
    if (!entry.calibration) {
      const started = performance.now();
      const search = createBeamSearch(drafter.drafter, { maxWidth: CONTROLLER_WIDTHS[CONTROLLER_WIDTHS.length - 1],
        maxLength: CONTROLLER_MAX_LENGTH });
      entry.calibration = calibrateCosts(loaded.model, search).toJSON();
      calibrationSeconds = (performance.now() - started) / 1000;
    }
    // Each mode refines its own copy: sampled decoding accepts less, and picks slower, than greedy.
    costs = createSpeculationCosts(entry.calibration);
  }
  const controller = createSpeculationController(costs, usableAcceptance(saved?.acceptance));
  entry.byMode.set(mode, controller);
  return { controller, calibrationSeconds };
}

/**
 * Calibrates the drafter on a model whose forward is asynchronous (WebGPU) unless this process already has, so that
 * speculationController can be made synchronously afterwards; returns the seconds it took (0 if nothing was done).
 * With `deviceSearch` the drafts are timed on the device, where they will run.
 */
export async function prepareSpeculationController(loaded: LoadedModel, drafter: LoadedDrafter,
  deviceSearch?: DeviceBeamSearch): Promise<number> {
  let entry = controllers.get(drafter);
  if (!entry) {
    entry = { byMode: new Map() };
    controllers.set(drafter, entry);
  }
  if (entry.calibration || entry.byMode.size > 0) return 0;
  const started = performance.now();
  const search = createBeamSearch(drafter.drafter, { maxWidth: CONTROLLER_WIDTHS[CONTROLLER_WIDTHS.length - 1],
    maxLength: CONTROLLER_MAX_LENGTH });
  entry.calibration = (await calibrateCostsAsync(loaded.model, search, {}, deviceSearch)).toJSON();
  return (performance.now() - started) / 1000;
}

/** What to save of a controller (for the tuning file). */
export function controllerState(controller: SpeculationController): ControllerState {
  return {
    costs: controller.costs.toJSON(),
    acceptance: { trials: Array.from(controller.shared.trials), successes: Array.from(controller.shared.successes) },
    updatedAt: new Date().toISOString(),
    machine: describeMachine(),
  };
}
