"""The ``ppsearch`` command line. User mistakes end in one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .design import PLACEMENTS, Design
from .layers.push_pull import VARIANTS


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + error; we keep it to one line
        raise UsageError(message)


def add_design_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Design()
    parser.add_argument("--placement", default=defaults.placement, help=f"one of {', '.join(PLACEMENTS)}")
    parser.add_argument("--variant", default=defaults.variant, help=f"one of {', '.join(VARIANTS)}")
    parser.add_argument("--scale", type=float, default=defaults.scale, help="upsampling factor h >= 1")
    parser.add_argument("--pull-kernel-size", type=int, default=None, help="explicit pull kernel size")
    parser.add_argument("--alpha", type=float, default=defaults.alpha, help="inhibition strength")
    parser.add_argument("--trainable-alpha", action="store_true", help="learn one alpha per channel")
    parser.add_argument("--avg-kernel-size", type=int, default=defaults.avg_kernel_size,
                        help="pull average pool (minmax_avg): 0, 3, 5, ...")
    parser.add_argument("--antialias", default=defaults.antialias, help="none, rect2, tri3, bin5 or 1..7")


def design_from_args(args: argparse.Namespace) -> dict:
    return Design(args.placement, args.variant, args.scale, args.pull_kernel_size, args.alpha,
                  args.trainable_alpha, args.avg_kernel_size, args.antialias).to_dict()


def _cmd_models(args: argparse.Namespace) -> None:
    from .models import describe_architectures
    from .profile import profile_model

    if args.arch is None:
        print(f"{'architectures':48s} family")
        for names, text in describe_architectures():
            print(f"{names:48s} {text}")
        return
    profile = profile_model(args.arch, in_chans=args.in_chans, num_classes=args.num_classes,
                            image_size=args.image_size, **design_from_args(args))
    print(profile.render())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ppsearch", description="Search where push-pull inhibition goes in a ConvNet.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    models = commands.add_parser("models", help="list architectures, or profile one with a design")
    models.add_argument("--arch", help="architecture name (see `ppsearch models`)")
    models.add_argument("--in-chans", type=int, default=3)
    models.add_argument("--num-classes", type=int, default=10)
    models.add_argument("--image-size", type=int, default=None, help="default: 32 for CIFAR models, 224 otherwise")
    add_design_arguments(models)
    models.set_defaults(run=_cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.run(args)
    except (UsageError, ValueError, FileNotFoundError) as error:
        print(f"ppsearch: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("ppsearch: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
