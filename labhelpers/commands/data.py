"""``python -m labhelpers data``: summarise the JSC data, or regenerate the simulation."""
from __future__ import annotations

NAME = "data"
HELP = "print rows per class and split and the fingerprint; `data simulate` regenerates the simulated JSC"


def add_arguments(parser) -> None:
    parser.add_argument("action", nargs="?", default="summary", choices=["summary", "simulate"],
                        help="summary (default) or simulate")
    parser.add_argument("--dataset", default="auto", choices=["auto", "real", "sim"], help="data source (default auto)")
    parser.add_argument("--path", default=None, help="a local hls4ml .h5/.parquet/.csv (real) or npz (sim)")
    parser.add_argument("--n-jets", type=int, default=100_000, help="simulate: jets in total, balanced over 5 classes")
    parser.add_argument("--seed", type=int, default=2026, help="simulate: base seed")
    parser.add_argument("--workers", type=int, default=2, help="simulate: processes")
    parser.add_argument("--out", default=None, help="simulate: output npz (default data/jsc_sim.npz)")
    parser.add_argument("--force", action="store_true", help="simulate: overwrite --out if it exists (the committed data/jsc_sim.npz)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args) -> int:
    from .. import data, validate

    if args.action == "simulate":
        from .. import simulate

        out = validate.output_file("--out", args.out or data.sim_path())
        validate.refuse_overwrite("--out", [out], args.force)
        path = simulate.simulate(args.n_jets, args.seed, out, workers=args.workers, progress=not args.no_progress)
        print(f"wrote {path}")
        return 0
    print(data.describe(data.load_jsc(args.dataset, args.path)))
    return 0
