"""Run configs, presets and the student ladder: bad input is refused with the fix."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ns_models import ModelError
from ns_train.config import TrainConfig, to_dict
from ns_train.config_files import overrides_as_dict
from ns_train.errors import TrainError
from ns_train.runs.config import RunConfig, load_run_config, run_config_from_dict
from ns_train.runs.loop import student_config, student_models
from ns_train.runs.presets import PRESETS, preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_and_round_trips(name: str) -> None:
    config = preset(name)
    assert config.name == name and PRESETS[name].summary
    assert run_config_from_dict(to_dict(config)) == config


def test_unknown_preset_names_the_nearest() -> None:
    with pytest.raises(
        TrainError, match=r"unknown preset 'digit-demo': did you mean 'digits-demo'"
    ):
        preset("digit-demo")


def test_toml_on_a_preset_changes_only_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        'preset = "digits-demo"\niterations = 3\n[student]\nepochs = 4.0\n'
        "[student.noise]\nrandaugment_n = 0\n"
    )
    config = load_run_config(path)
    base = preset("digits-demo")
    assert config.iterations == 3 and config.student.epochs == 4.0
    assert config.student.noise.randaugment_n == 0
    assert config.student.noise.randaugment_m == base.student.noise.randaugment_m
    assert config.teacher == base.teacher


def test_toml_data_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[data]\nlabeled = "shards/train"\nunlabeled = "shards/u"\n')
    assert load_run_config(path).data.labeled == str(tmp_path / "shards" / "train")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("iteration = 3", r"unknown field config\.iteration; did you mean 'iterations'\?"),
        ("[student]\nepoch = 3", r"unknown field config\.student\.epoch; did you mean 'epochs'\?"),
        ("[student.noise]\nrandaugment = 0", r"config\.student\.noise\.randaugment;"),
        ("threshold = 1.5", r"threshold must be in \[0, 1\)"),
        ("iterations = [", r"not valid TOML"),
    ],
)
def test_bad_toml_is_refused_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(TrainError, match=message):
        load_run_config(path)


def test_overrides_parse_as_toml_values() -> None:
    assert overrides_as_dict(["student.epochs=5", "students=['tinynet_e']", "name=x y"]) == {
        "student": {"epochs": 5},
        "students": ["tinynet_e"],
        "name": "x y",
    }
    with pytest.raises(TrainError, match="KEY=VALUE"):
        overrides_as_dict(["iterations"])


def test_empty_students_climb_the_ladder_and_stop_at_the_top() -> None:
    config = preset("imagenet-b0-b7-l2")
    models = student_models(config)
    assert models[0] == "efficientnet_b1" and models[-2:] == ["efficientnet_b7", "efficientnet_l2"]
    assert (
        student_models(RunConfig(teacher=replace_model("efficientnet_l2"), iterations=2))
        == ["efficientnet_l2"] * 2
    )
    last = student_config(config, 8, models[-1])
    assert (last.image_size, last.unlabeled_ratio) == (475, 14)
    assert student_config(config, 1, models[0]).image_size == 240


def test_a_smaller_student_is_refused_unless_allowed(caplog: pytest.LogCaptureFixture) -> None:
    config = RunConfig(teacher=replace_model("efficientnet_b2"), students=("efficientnet_b0",))
    with pytest.raises(TrainError, match=r"smaller than its teacher.*allow_smaller_student"):
        student_models(config)
    allowed = run_config_from_dict({"allow_smaller_student": True}, config)
    with caplog.at_level(logging.WARNING):
        assert student_models(allowed) == ["efficientnet_b0"] * 2
    assert "smaller" in caplog.text


def test_init_from_teacher_needs_the_same_model() -> None:
    config = RunConfig(teacher=replace_model("efficientnet_b0"), init_from_teacher=True)
    with pytest.raises(TrainError, match="init_from_teacher"):
        student_models(config)


def test_an_unknown_student_model_names_near_ones() -> None:
    with pytest.raises(ModelError, match="efficientnet_b1"):
        student_models(RunConfig(students=("efficientnet_b11",)))


def replace_model(model: str) -> TrainConfig:
    return TrainConfig(model=model)


def test_old_spellings_of_renamed_fields_are_read(tmp_path: Path) -> None:
    """ns 0.2's `label_batch_size`, `noised_teacher`, `student.backend`/`workers` still read."""
    path = tmp_path / "run.toml"
    path.write_text(
        'preset = "digits-demo"\nlabel_batch_size = 64\nnoised_teacher = true\n'
        '[student]\nbackend = "torch"\nworkers = 0\n'
    )
    config = load_run_config(path)
    assert config.label.batch_size == 64 and config.label.noised
    assert config.student.loader.backend == "torch" and config.student.loader.workers == 0
    assert config.label.loader == preset("digits-demo").label.loader  # its own, not the student's
    override = run_config_from_dict(overrides_as_dict(["teacher.workers=3"]), config)
    assert override.teacher.loader.workers == 3
    assert run_config_from_dict(to_dict(config)) == config


def test_both_spellings_of_one_field_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("label_batch_size = 64\n[label]\nbatch_size = 32\n")
    with pytest.raises(TrainError, match=r"config\.label_batch_size is the old spelling"):
        load_run_config(path)


def test_train_config_takes_the_old_keywords_and_the_loader_table() -> None:
    from ns_data.loading.config import LoaderConfig

    with pytest.warns(DeprecationWarning):
        old = TrainConfig(backend="torch", workers=0)
    assert old == TrainConfig(loader=LoaderConfig(backend="torch", workers=0))
    assert "backend" not in to_dict(old) and to_dict(old)["loader"]["backend"] == "torch"
    with pytest.raises(TrainError, match=r"loader\.backend must be one of"):
        run_config_from_dict({"student": {"loader": {"backend": "dali"}}})


def test_a_run_directory_of_ns_0_3_continues_without_force(tmp_path: Path) -> None:
    """Its `run_config.json` has the old names: the same config, rewritten in today's."""
    import json

    from ns_train.runs.folder import RunLayout, claim

    config = to_dict(preset("digits-demo"))
    old = json.loads(json.dumps(config))
    label = old.pop("label")
    old["label_batch_size"], old["noised_teacher"] = label["batch_size"], label["noised"]
    for job in ("teacher", "student"):
        loader = old[job].pop("loader")
        old[job]["backend"], old[job]["workers"] = loader["backend"], loader["workers"]
    del old["data"]["seed"]  # 0.3 had no [label]: it labeled with the student's loader
    layout = RunLayout(tmp_path / "run")
    layout.root.mkdir()
    layout.config.write_text(json.dumps(old))
    claim(layout, config, force=False)
    assert json.loads(layout.config.read_text()) == json.loads(json.dumps(config))
    changed = {**config, "iterations": 5}
    with pytest.raises(TrainError, match=r"differs in iterations\)"):
        claim(layout, changed, force=False)


def test_the_digits_split_has_its_own_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ns_train.runs.digits as digits
    import ns_train.runs.loop as loop
    from ns_train.runs.digits import DigitsSplits
    from ns_train.runs.folder import RunLayout

    seeds: list[int] = []

    def write_digits(out: Path, *, seed: int, **options: object) -> DigitsSplits:
        seeds.append(seed)
        return DigitsSplits(out, out, out)

    monkeypatch.setattr(digits, "write_digits", write_digits)  # imported when used
    for changes in ({"teacher": {"seed": 7}}, {"data": {"source": "digits", "seed": 5}}):
        loop.prepare_data(run_config_from_dict(changes), RunLayout(tmp_path))
    assert seeds == [0, 5]  # the teacher's seed no longer moves the digits
