"""The documentation: the generated reference pages match the code, and the README's links lead
somewhere. (`make docs` and `make test` build the site itself with `mkdocs build --strict`.)"""
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "docs" / "generate_reference.py"


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_reference", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator():
    return load_generator()


@pytest.fixture(scope="module")
def pages(generator):
    return generator.render()


def test_reference_pages_match_the_code(generator, pages):
    out_of_date = generator.stale(pages)
    assert not out_of_date, (f"docs/reference/ is out of date ({', '.join(out_of_date)}): "
                             f"regenerate with {generator.REGENERATE}")


def test_no_stale_reference_page_is_left_behind(generator, pages):
    committed = {p.name for p in generator.REFERENCE_DIR.glob("*.md")}
    extra = sorted(committed - set(pages))
    assert not extra, f"docs/reference/ holds pages the generator no longer writes: {', '.join(extra)}; delete them"


def test_the_staleness_check_notices_a_changed_page(generator, pages, tmp_path):
    for name, text in pages.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert generator.stale(pages, tmp_path) == []
    (tmp_path / "cli.md").write_text(pages["cli.md"].replace("ppsearch run", "ppsearch walk", 1), encoding="utf-8")
    (tmp_path / "run-directory.md").unlink()
    assert generator.stale(pages, tmp_path) == ["cli.md", "run-directory.md"]


def test_the_reference_does_not_depend_on_the_terminal(generator, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    narrow = generator.render()
    monkeypatch.setenv("COLUMNS", "300")
    assert generator.render() == narrow


def test_every_command_and_option_of_the_parser_is_documented(pages):
    import argparse

    from ppsearch.cli import build_parser

    cli = pages["cli.md"]
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in commands.choices.items():
        assert f"## `ppsearch {name}`" in cli
        for action in parser._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert f"`{flag}" in cli, f"{flag} of `ppsearch {name}` is missing from cli.md"


def test_the_readme_links_lead_to_files():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert targets
    for target in targets:
        if not re.match(r"[a-z]+://", target):
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def test_the_readme_states_the_suites_count_of_bad_input_cases(request):
    """The reliability section's number is the count of this suite's cases marked ``bad_input``."""
    config = request.config
    if config.option.keyword or config.option.markexpr or [Path(a).resolve() for a in config.args] != [ROOT / "tests"]:
        pytest.skip("it counts the whole suite: run pytest without -k, -m or paths")
    count = sum(item.get_closest_marker("bad_input") is not None for item in request.session.items)
    assert f"**{count} bad-input and fault cases**" in (ROOT / "README.md").read_text(), count


def test_the_budget_list_states_the_budgets():
    """How-to "Train one configuration" lists every budget's sizes and recipe as ppsearch/training/budgets.py has them."""
    from ppsearch.cli import build_parser
    from ppsearch.training.budgets import BUDGETS

    page = (ROOT / "docs" / "how-to" / "train-one-configuration.md").read_text(encoding="utf-8")
    count = r"(all|[\d,]+)"
    stated = re.findall(rf"^- \*\*`([\w-]+)`\*\*( \(the default\))?: {count} images, (\d+) epochs, `([\w-]+)`; "
                        rf"measured on {count} / {count} / {count}\.", page, re.MULTILINE)

    def text(images):
        return "all" if images is None else f"{images:,}"

    default = build_parser().parse_args(["run"]).budget
    assert stated == [(b.name, " (the default)" if b.name == default else "", text(b.train_images), str(b.epochs),
                       b.recipe, text(b.eval_images), text(b.c_images), text(b.p_images)) for b in BUDGETS.values()]
