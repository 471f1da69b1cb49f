"""BLOSSOM ServerApp: discover nodes, run the strategy per run, ask the nodes to
export their personalized models, write results."""

from functools import cache, partial
from logging import INFO

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.supercore import log

from blossom_app.common.config import ExperimentConfig
from blossom_app.common.model import build_model, parameter_keys
from blossom_app.common.presets import resolve_preset
from blossom_app.reporting.output import ExperimentOutput
from blossom_app.server.export_round import export_models
from blossom_app.server.fleet import Fleet, check_fleet, discover_nodes
from blossom_app.server.server_optimizers import ServerOptimizer
from blossom_app.server.strategy import BlockwiseStrategy

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run ``num-runs`` federated experiments with seeds ``seed, seed+1, ...``."""
    run_config = resolve_preset(context.run_config)
    config = ExperimentConfig.from_run_config(run_config)
    if config.preset:
        applied = [
            f"{k} = {v!r}" for k, v in run_config.items() if context.run_config[k] != v
        ]
        log(INFO, "Preset '%s' set: %s", config.preset, ", ".join(applied) or "nothing")
    profiles = discover_nodes(grid, config.mix.num_clients, config.round_timeout)
    check_fleet(profiles, config.mix)
    fleet = Fleet(profiles, config.mix, config.round_timeout)
    output = ExperimentOutput(config, run_config)
    log(INFO, "BLOSSOM results directory: %s", output.path)
    held_keys = cache(partial(parameter_keys, config.task, fusion=config.fusion))
    for run_index in range(config.num_runs):
        seed = config.run_seed(run_index)
        log(INFO, "BLOSSOM run %d/%d (seed %d)", run_index + 1, config.num_runs, seed)
        strategy = BlockwiseStrategy(
            config.policy,
            fleet,
            held_keys,
            num_rounds=config.num_server_rounds,
            fraction_train=config.fraction_train,
            evaluate_every=config.evaluate_every,
            seed=seed,
            transport=config.transport,
            optimizer=ServerOptimizer(config.server_optimizer),
        )
        model = build_model(
            config.task, config.task.modality_names, config.fusion, seed
        )
        round_config = ConfigRecord({"run-index": run_index})
        result = strategy.start(
            grid,
            ArrayRecord(model.state_dict()),
            num_rounds=config.num_server_rounds,
            timeout=config.round_timeout,
            train_config=round_config,
            evaluate_config=round_config,
        )
        if config.export_onnx:
            export_models(
                grid,
                strategy,
                result.arrays,
                output.run_dir(run_index) / "models",
                run_index=run_index,
                server_round=config.num_server_rounds,
                int8=config.export_int8,
                timeout=config.round_timeout,
            )
        output.write_run(run_index, strategy.record)
    output.finish()
