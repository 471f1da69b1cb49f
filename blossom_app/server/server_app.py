"""BLOSSOM ServerApp: discover nodes, run the strategy per run (from a
checkpoint when resuming), ask the nodes to export their personalized models,
write results."""

from functools import cache, partial
from logging import INFO

from flwr.app import ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.supercore import log

from blossom_app.common.config import ExperimentConfig
from blossom_app.common.model import parameter_keys
from blossom_app.common.presets import app_defaults, resolve_preset
from blossom_app.common.protocol import EXPERIMENT, NODE_STATE_DIR
from blossom_app.reporting.layout import CHECKPOINT, NODE_STATE, experiment_name
from blossom_app.reporting.output import ExperimentOutput
from blossom_app.server.export_round import export_models
from blossom_app.server.fleet import (
    Fleet,
    check_fleet,
    discover_nodes,
    warn_if_few_steps,
)
from blossom_app.server.resume import Checkpoints, find_resume, starting_state
from blossom_app.server.strategy import BlockwiseStrategy

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run ``num-runs`` federated experiments with seeds ``seed, seed+1, ...``,
    or continue one from its checkpoint (``resume``)."""
    run_config = resolve_preset(context.run_config)
    config = ExperimentConfig.from_run_config(run_config)
    if config.preset:
        applied = [
            f"{k} = {v!r}" for k, v in run_config.items() if context.run_config[k] != v
        ]
        log(INFO, "Preset '%s' set: %s", config.preset, ", ".join(applied) or "nothing")
    resumed = None
    if config.resume:
        resumed = find_resume(config.resume, run_config, app_defaults())
        if resumed.finished:
            log(INFO, "%s finished already: nothing to resume", resumed.path)
            return
        log(
            INFO,
            "Resuming %s: run %d, after round %d",
            resumed.path,
            resumed.run_index,
            resumed.server_round,
        )
    profiles = discover_nodes(grid, config.mix.num_clients, config.round_timeout)
    check_fleet(profiles, config.mix)
    warn_if_few_steps(profiles, config.training)
    fleet = Fleet(profiles, config.mix, config.round_timeout)
    if resumed:
        output = ExperimentOutput.reopen(resumed.path)
    else:
        output = ExperimentOutput(config, run_config)
    log(INFO, "BLOSSOM results directory: %s", output.path)
    held_keys = cache(partial(parameter_keys, config.task, fusion=config.fusion))
    for run_index in range(resumed.run_index if resumed else 0, config.num_runs):
        seed = config.run_seed(run_index)
        log(INFO, "BLOSSOM run %d/%d (seed %d)", run_index + 1, config.num_runs, seed)
        round_config = ConfigRecord(
            {
                "run-index": run_index,
                EXPERIMENT: experiment_name(output.path),
                NODE_STATE_DIR: str(output.path / NODE_STATE),
            }
        )
        checkpoints = Checkpoints(
            output.path / CHECKPOINT,
            run_config,
            config.checkpoint_every,
            config.num_server_rounds,
            round_config,
        )
        state = starting_state(config, run_index, fleet.profiles, resumed, checkpoints)
        strategy = BlockwiseStrategy(
            config.policy,
            fleet,
            held_keys,
            num_rounds=config.num_server_rounds,
            fraction_train=config.fraction_train,
            evaluate_every=config.evaluate_every,
            transport=config.transport,
            state=state,
        )
        arrays = strategy.run(grid, round_config, config.round_timeout, checkpoints)
        if config.export_onnx:
            export_models(
                grid,
                strategy,
                arrays,
                round_config,
                output.run_dir(run_index) / "models",
                server_round=config.num_server_rounds,
                int8=config.export_int8,
                timeout=config.round_timeout,
            )
        output.write_run(run_index, strategy.record)
    output.finish()
