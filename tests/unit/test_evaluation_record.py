"""Evaluation records (explorer.evaluation.record) and the metric table (explorer.evaluation.metrics)."""

from __future__ import annotations

import json
import math

import pytest

from explorer.evaluation.metrics import (
    BY_KEY,
    COLUMNS,
    METRICS,
    Better,
    Group,
    MetricSpec,
    best_rows,
    best_rows_within,
    format_value,
)
from explorer.evaluation.record import (
    MAX_DETAIL_NUMBERS,
    MAX_FINGERPRINT,
    MAX_METRICS,
    MAX_NAME,
    MAX_NOTES,
    MAX_RECORDS,
    MAX_TEXT,
    Evaluation,
    records_from_json,
    with_record,
)


def full_record(**changes) -> Evaluation:
    base = dict(dataset="mnist", binarize="dynamic", step=1234,
                metrics={"test_loss": 101.5, "kl": 20.25, "iw_nll": 95.0, "iw_se": 0.5, "psnr": math.inf},
                details={"kl_per_dim": [0.5, 1.5, 0.0]}, notes=("a note", "another"),
                iw_k=5, n_samples=200, seconds=3.5, split="test", n_images=10_000, fingerprint="0123456789abcdef")
    base.update(changes)
    return Evaluation(**base)


# -- round trip ----------------------------------------------------------------------------


def test_to_dict_from_dict_round_trip() -> None:
    record = full_record()
    data = record.to_dict()
    assert data["metrics"]["test_loss"] == 101.5 and data["notes"] == ["a note", "another"]
    assert Evaluation.from_dict(data) == record
    # through JSON text too (infinity is how Python's json spells it)
    assert Evaluation.from_dict(json.loads(json.dumps(data))) == record


def test_to_dict_copies_so_the_record_stays_unchanged() -> None:
    record = full_record()
    data = record.to_dict()
    data["metrics"]["test_loss"] = 0.0
    data["details"]["kl_per_dim"].append(9.0)
    assert record.metrics["test_loss"] == 101.5
    assert record.details["kl_per_dim"] == [0.5, 1.5, 0.0]


def test_from_dict_fills_defaults_for_a_minimal_record() -> None:
    record = Evaluation.from_dict({"dataset": "folder/x"})
    assert record == Evaluation(dataset="folder/x")
    assert record.binarize == "none" and record.step == 0 and record.metrics == {} and record.notes == ()


def test_an_older_record_without_its_test_set_reads_as_unknown() -> None:
    """Records written before the test set was recorded: no split, size or fingerprint."""
    data = full_record().to_dict()
    for key in ("split", "n_images", "fingerprint"):
        del data[key]
    record = Evaluation.from_dict(data)
    assert (record.split, record.n_images, record.fingerprint) == ("", 0, "")
    assert not record.data_known and record.data_key() is None
    assert record.measured_on() == "mnist ?, ? images, binarised: dynamic"
    assert record.metrics == full_record().metrics  # its numbers still read
    assert Evaluation.from_dict(record.to_dict()) == record  # and round-trip as unknown
    assert records_from_json([data]) == [record]


def test_a_record_says_what_it_was_measured_on() -> None:
    record = full_record()
    assert record.data_known
    assert record.measured_on() == "mnist test, 10,000 images, binarised: dynamic"
    assert record.data_key() == ("mnist", "test", "dynamic", 10_000, "0123456789abcdef")
    data = record.to_dict()
    assert (data["split"], data["n_images"], data["fingerprint"]) == ("test", 10_000, "0123456789abcdef")
    assert full_record(n_images=300).data_key() != record.data_key()
    assert full_record(fingerprint="f" * 16).data_key() != record.data_key()
    assert full_record(binarize="none").data_key() != record.data_key()


def test_from_dict_turns_whole_numbers_into_floats() -> None:
    record = Evaluation.from_dict({"dataset": "mnist", "metrics": {"active_units": 12}, "seconds": 2})
    assert record.metrics["active_units"] == 12.0 and isinstance(record.metrics["active_units"], float)
    assert isinstance(record.seconds, float)


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [None, [], "mnist", 3, ["dataset", "mnist"]])
def test_from_dict_refuses_what_is_not_an_object(data) -> None:
    with pytest.raises(ValueError, match="object"):
        Evaluation.from_dict(data)


def _with(**changes) -> dict:
    data = full_record().to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize("data", [
    _with(metrics={"test_loss": math.nan}),
    _with(metrics={"test_loss": True}),
    _with(metrics={"test_loss": "101"}),
    _with(metrics={"test_loss": None}),
    _with(metrics=[["test_loss", 1.0]]),
    _with(metrics={f"m{i}": 1.0 for i in range(MAX_METRICS + 1)}),
    _with(metrics={"x" * 65: 1.0}),
    _with(dataset=None),
    _with(dataset=5),
    _with(dataset="x" * (MAX_TEXT + 1)),
    _with(binarize=None),
    _with(step=True),
    _with(step=-1),
    _with(step=1.5),
    _with(step=2**53),
    _with(iw_k=False),
    _with(n_samples="200"),
    _with(seconds=True),
    _with(seconds=math.nan),
    _with(notes="one line"),
    _with(notes=["x" * (MAX_TEXT + 1)]),
    _with(notes=[3]),
    _with(notes=["n"] * (MAX_NOTES + 1)),
    _with(details={"kl_per_dim": 0.5}),
    _with(details={"kl_per_dim": [0.5, True]}),
    _with(details={"kl_per_dim": [math.nan]}),
    _with(details=[0.5]),
    _with(details={"a": [0.0] * (MAX_DETAIL_NUMBERS // 2), "b": [0.0] * (MAX_DETAIL_NUMBERS // 2 + 1)}),
    _with(details={"a": [0.0] * (MAX_DETAIL_NUMBERS + 1)}),
    _with(split=None),
    _with(split=3),
    _with(split="x" * (MAX_NAME + 1)),
    _with(n_images=-1),
    _with(n_images=1.5),
    _with(n_images=True),
    _with(n_images="300"),
    _with(n_images=2**53),
    _with(fingerprint=None),
    _with(fingerprint=["ab"]),
    _with(fingerprint="f" * (MAX_FINGERPRINT + 1)),
], ids=lambda d: next((k for k in d if d[k] != full_record().to_dict()[k]), "?"))
def test_from_dict_refuses_malformed_fields(data) -> None:
    with pytest.raises(ValueError) as info:
        Evaluation.from_dict(data)
    message = str(info.value)
    assert "\n" not in message and message.startswith("evaluation")


def test_from_dict_accepts_the_limits_exactly() -> None:
    data = _with(metrics={f"m{i}": 1.0 for i in range(MAX_METRICS)}, notes=["n" * MAX_TEXT] * MAX_NOTES,
                 details={"kl_per_dim": [0.0] * MAX_DETAIL_NUMBERS}, dataset="d" * MAX_TEXT)
    record = Evaluation.from_dict(data)
    assert len(record.metrics) == MAX_METRICS and len(record.notes) == MAX_NOTES
    assert len(record.details["kl_per_dim"]) == MAX_DETAIL_NUMBERS


def test_infinite_values_are_kept() -> None:
    # an exact copy has infinite PSNR: a number, not damage
    record = Evaluation.from_dict(_with(metrics={"psnr": math.inf, "x": -math.inf}))
    assert record.metrics["psnr"] == math.inf and record.metrics["x"] == -math.inf


def test_records_from_json_drops_damaged_entries_and_caps() -> None:
    good = full_record().to_dict()
    records = records_from_json([good, {"dataset": 5}, "junk", None, _with(metrics={"a": math.nan}), good])
    assert records == [full_record(), full_record()]
    assert records_from_json({"dataset": "mnist"}) == []
    assert records_from_json(None) == []
    assert len(records_from_json([good] * (MAX_RECORDS + 5))) == MAX_RECORDS


# -- merging ---------------------------------------------------------------------------------


def test_merged_with_keeps_old_metrics_and_lets_new_ones_win() -> None:
    old = full_record(metrics={"test_loss": 100.0, "iw_nll": 95.0}, details={"kl_per_dim": [1.0]}, notes=("a", "b"),
                      iw_k=5, n_samples=0, seconds=2.0, groups=("loss", "likelihood"))
    new = full_record(metrics={"test_loss": 99.0, "psnr": 20.0}, details={"other": [2.0]}, notes=("b", "c"),
                      iw_k=0, n_samples=300, seconds=1.5, groups=("loss", "recon"))
    merged = old.merged_with(new)
    assert merged.metrics == {"test_loss": 99.0, "iw_nll": 95.0, "psnr": 20.0}
    assert merged.details == {"kl_per_dim": [1.0], "other": [2.0]}
    assert merged.notes == ("a", "b", "c")  # in order, no repeats
    assert merged.iw_k == 5 and merged.n_samples == 300  # zero means "not estimated": the older count stays
    assert merged.seconds == pytest.approx(3.5)
    assert (merged.dataset, merged.binarize, merged.step) == (new.dataset, new.binarize, new.step)
    assert old.metrics == {"test_loss": 100.0, "iw_nll": 95.0}  # frozen: the old record is unchanged


def test_merged_with_keeps_the_newest_notes_within_the_cap() -> None:
    old = full_record(notes=tuple(f"old {i}" for i in range(MAX_NOTES)), groups=("samples",))
    new = full_record(notes=("new 1", "new 2"), groups=("loss",))
    merged = old.merged_with(new)
    assert merged.groups == ("samples", "loss")
    assert len(merged.notes) == MAX_NOTES
    assert merged.notes[-2:] == ("new 1", "new 2") and "old 0" not in merged.notes
    assert Evaluation.from_dict(merged.to_dict()) == merged  # still a valid record


def test_notes_of_groups_measured_again_are_replaced() -> None:
    old = full_record(notes=("Sample quality skipped: the classifier is missing",), groups=("loss", "samples"))
    new = full_record(notes=(), groups=("loss", "samples", "latent"))
    assert old.merged_with(new).notes == ()


def test_same_subject() -> None:
    a = full_record()
    assert a.same_subject(full_record(metrics={}))
    assert not a.same_subject(full_record(step=1))
    assert not a.same_subject(full_record(binarize="none"))
    assert not a.same_subject(full_record(dataset="fashion-mnist"))


def test_same_subject_needs_the_same_test_set() -> None:
    a = full_record()
    assert not a.same_subject(full_record(n_images=300))
    assert not a.same_subject(full_record(fingerprint="ffffffffffffffff"))
    assert not a.same_subject(full_record(split="train"))
    older = full_record(split="", n_images=0, fingerprint="")
    assert not a.same_subject(older) and not older.same_subject(a), "an unknown test set is not this one"
    assert older.same_subject(full_record(split="", n_images=0, fingerprint="", metrics={})), \
        "two older records of the same weights merge, as they always did"


def test_merged_with_does_not_merge_numbers_measured_on_other_data() -> None:
    on_300 = full_record(n_images=300, fingerprint="a" * 16, metrics={"test_loss": 100.0, "iw_nll": 95.0},
                         groups=("loss", "likelihood"), seconds=2.0)
    on_200 = full_record(n_images=200, fingerprint="b" * 16, metrics={"psnr": 20.0}, groups=("recon",),
                         seconds=1.0)
    assert on_300.merged_with(on_200) == on_200, "no number of the 300-image test set is carried over"
    older = full_record(split="", n_images=0, fingerprint="", metrics={"iw_nll": 90.0})
    assert older.merged_with(on_300) == on_300
    assert on_300.merged_with(older) == older
    assert full_record(step=1).merged_with(on_300) == on_300, "other weights are not merged either"


def test_with_record_keeps_records_of_other_test_sets_apart() -> None:
    on_300 = full_record(n_images=300, fingerprint="a" * 16, metrics={"test_loss": 100.0})
    on_200 = full_record(n_images=200, fingerprint="b" * 16, metrics={"psnr": 20.0})
    out = with_record([on_300], on_200)
    assert out == [on_300, on_200], "the same weights on two test sets: two records, neither merged"
    again = with_record(out, full_record(n_images=200, fingerprint="b" * 16, metrics={"kl": 1.0}))
    assert [r.n_images for r in again] == [300, 200]
    assert again[1].metrics == {"psnr": 20.0, "kl": 1.0}, "the same test set merges"
    assert again[0].metrics == {"test_loss": 100.0}


def test_with_record_keeps_an_older_record_apart_and_drops_it_with_its_weights() -> None:
    older = full_record(split="", n_images=0, fingerprint="", metrics={"iw_nll": 90.0})
    new = full_record(metrics={"test_loss": 100.0})
    out = with_record([older], new)
    assert out == [older, new], "an older record's numbers are not attributed to the new test set"
    later = full_record(step=9999, metrics={"test_loss": 80.0})
    assert with_record(out, later) == [later], "both described weights that are gone"


def test_merges_of_records_on_other_data_stay_within_bounds() -> None:
    records: list[Evaluation] = []
    for i in range(MAX_RECORDS + 3):
        records = with_record(records, full_record(n_images=100 + i, fingerprint=f"{i:016x}",
                                                   metrics={f"m{j}": 1.0 for j in range(MAX_METRICS)}))
    assert len(records) == MAX_RECORDS
    assert [r.n_images for r in records] == [100 + i for i in range(3, MAX_RECORDS + 3)]
    assert records_from_json([r.to_dict() for r in records]) == records


def test_with_record_merges_the_same_subject() -> None:
    old = full_record(metrics={"test_loss": 100.0})
    new = full_record(metrics={"psnr": 20.0})
    out = with_record([old], new)
    assert len(out) == 1
    assert out[0].metrics == {"test_loss": 100.0, "psnr": 20.0}


def test_with_record_replaces_the_same_dataset_at_another_step() -> None:
    old = full_record(step=100, metrics={"test_loss": 100.0})
    new = full_record(step=200, metrics={"psnr": 20.0})
    out = with_record([old], new)
    assert out == [new]  # the old weights are gone, and so are their numbers


def test_with_record_keeps_other_datasets_and_binarisations() -> None:
    fashion = full_record(dataset="fashion-mnist", metrics={"test_loss": 250.0})
    grey = full_record(binarize="none", metrics={"test_loss": 90.0})
    new = full_record(metrics={"test_loss": 100.0})
    out = with_record([fashion, grey], new)
    assert out == [fashion, grey, new]  # newest last


def test_with_record_moves_a_merged_record_last() -> None:
    a = full_record(metrics={"test_loss": 100.0})
    b = full_record(dataset="kmnist")
    out = with_record([a, b], full_record(metrics={"psnr": 1.0}))
    assert [r.dataset for r in out] == ["kmnist", "mnist"]
    assert out[1].metrics == {"test_loss": 100.0, "psnr": 1.0}


def test_with_record_caps_at_max_records_dropping_the_oldest() -> None:
    records: list[Evaluation] = []
    for i in range(MAX_RECORDS + 3):
        records = with_record(records, full_record(dataset=f"set{i}"))
    assert len(records) == MAX_RECORDS
    assert [r.dataset for r in records] == [f"set{i}" for i in range(3, MAX_RECORDS + 3)]


def test_with_record_does_not_change_its_input() -> None:
    records = [full_record(dataset="a"), full_record(dataset="b")]
    before = list(records)
    with_record(records, full_record(dataset="a", metrics={"psnr": 3.0}))
    assert records == before


# -- the metric table ----------------------------------------------------------------------


def test_every_metric_key_is_unique_and_error_keys_name_other_specs() -> None:
    keys = [m.key for m in METRICS]
    assert len(keys) == len(set(keys))
    assert set(BY_KEY) == set(keys)
    for spec in METRICS:
        if spec.error_key:
            assert spec.error_key in BY_KEY and spec.error_key != spec.key, spec.key
            assert BY_KEY[spec.error_key].better is Better.NEITHER
    assert BY_KEY["iw_nll"].error_key == "iw_se"


def test_every_metric_has_a_title_a_description_and_a_group() -> None:
    for spec in METRICS:
        assert spec.title and spec.what, spec.key
        assert isinstance(spec.group, Group) and isinstance(spec.better, Better)
        assert len(spec.title) <= 24, spec.key  # a column header
    assert {m.group for m in METRICS} == set(Group)


def test_columns_leave_out_the_error_keys() -> None:
    keys = [c.key for c in COLUMNS]
    assert "iw_se" not in keys and "iw_nll" in keys
    assert len(keys) == len(METRICS) - 1


def test_percent_metrics_are_the_accuracies() -> None:
    assert {m.key for m in METRICS if m.percent} == {
        "class_accuracy", *(f"{m}_acc_{b}" for m in ("knn", "probe") for b in ("100", "1000", "all"))}


@pytest.mark.parametrize(("key", "value", "error", "text"), [
    ("test_loss", None, None, ""),
    ("test_loss", 101.234, None, "101.23"),
    ("test_loss", 1234.56, None, "1,234.6"),
    ("test_loss", -1234.56, None, "-1,234.6"),
    ("recon_mse", 0.012345678, None, "0.01235"),
    ("recon_mse", 0.0, None, "0"),
    ("psnr", math.inf, None, "∞"),
    ("psnr", -math.inf, None, "-∞"),
    ("psnr", math.nan, None, "n/a"),
    ("iw_nll", 95.1234, 0.4567, "95.12 ± 0.46"),
    ("knn_acc_100", 0.8767, None, "87.7%"),
    ("probe_acc_all", 1.0, None, "100.0%"),
    ("active_units", 19.0, None, "19"),
    ("fid", 1.0, None, "1.00"),
])
def test_format_value(key: str, value, error, text: str) -> None:
    assert format_value(BY_KEY[key], value, error) == text


def _spec(better: Better) -> MetricSpec:
    return MetricSpec("x", "X", "", better, Group.LOSS, "a test column")


def test_best_rows_lower_is_better_marks_the_minimum() -> None:
    assert best_rows([3.0, 1.0, 2.0], _spec(Better.LOWER)) == {1}
    assert best_rows([3.0, 1.0, 2.0], BY_KEY["test_loss"]) == {1}


def test_best_rows_higher_is_better_marks_the_maximum() -> None:
    assert best_rows([3.0, 1.0, 2.0], _spec(Better.HIGHER)) == {0}
    assert best_rows([0.5, 0.9, 0.7], BY_KEY["knn_acc_all"]) == {1}


def test_best_rows_marks_every_tie_and_skips_missing_values() -> None:
    assert best_rows([1.0, None, 1.0, 2.0], _spec(Better.LOWER)) == {0, 2}
    assert best_rows([None, 5.0, 5.0], _spec(Better.HIGHER)) == {1, 2}
    assert best_rows([None, 4.0, None, 3.0], _spec(Better.LOWER)) == {3}


def test_best_rows_marks_none_for_a_description_column() -> None:
    assert best_rows([1.0, 2.0, 3.0], _spec(Better.NEITHER)) == set()
    assert best_rows([1.0, 2.0], BY_KEY["kl"]) == set()


@pytest.mark.parametrize("values", [[], [1.0], [None, 1.0, None], [None, None]])
def test_best_rows_needs_two_values(values) -> None:
    assert best_rows(values, _spec(Better.LOWER)) == set()
    assert best_rows(values, _spec(Better.HIGHER)) == set()


def test_best_rows_within_ranks_only_rows_of_the_same_test_set() -> None:
    loss = BY_KEY["test_loss"]
    # rows 0 and 2 on one test set, rows 1 and 3 on another: the lowest loss overall (row 1)
    # is not "better" than row 0's, which was measured on other images
    assert best_rows_within([100.0, 90.0, 110.0, 95.0], ["a", "b", "a", "b"], loss) == {0, 1}
    assert best_rows_within([100.0, 90.0], ["a", "b"], loss) == set(), "one row per test set: nothing to rank"
    assert best_rows_within([100.0, 90.0, 80.0], ["a", "a", None], loss) == {1}, "an unknown set ranks with none"
    assert best_rows_within([100.0, 90.0], [None, None], loss) == set()
    assert best_rows_within([None, 90.0, 80.0], ["a", "a", "a"], loss) == {2}
    assert best_rows_within([1.0, 2.0], ["a", "a"], BY_KEY["kl"]) == set()
    values = [3.0, 1.0, 2.0]
    assert best_rows_within(values, ["k"] * 3, loss) == best_rows(values, loss), "one test set: as before"


def test_best_rows_with_infinity() -> None:
    assert best_rows([20.0, math.inf, 30.0], BY_KEY["psnr"]) == {1}
