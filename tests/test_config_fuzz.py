"""Hostile configuration values, thrown by hypothesis at every registered experiment's Config and
at the CLI's ``--set``: each is accepted (and then validates, and round-trips through
config.json) or rejected with a one-line ConfigError naming a field (exit 2 from the CLI), never
another exception. New experiments are covered by being registered."""

import collections
import dataclasses
import json
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxdyn import cli
from jaxdyn.experiments import ConfigError, get, index
from jaxdyn.experiments.base import _element_type, _is_tuple_type

NAMES = sorted(index())
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
# Deterministic (CI must not flake) and no example database written into the repository.
FUZZ = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

ANY_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.binary(max_size=4),
    st.complex_numbers(max_magnitude=1e3), st.sampled_from([np.int64(3), np.float32(0.5), np.nan, -0.0, 1e-320, 1e308]),
)
ANY_VALUE = st.one_of(
    ANY_SCALAR,
    st.lists(ANY_SCALAR, max_size=4), st.tuples(ANY_SCALAR), st.just(()), st.dictionaries(st.text(max_size=3), ANY_SCALAR, max_size=2),
    st.lists(st.lists(st.integers(), max_size=2), max_size=2),
)


def _near(meta, tp):
    """Values at and just beyond a field's declared bounds and choices."""
    values = []
    for bound in (meta.get("min"), meta.get("max")):
        if bound is None:
            continue
        if tp is int:
            values += [int(bound) - 1, int(bound), int(bound) + 1]
        else:
            values += [float(bound), math.nextafter(float(bound), math.inf), math.nextafter(float(bound), -math.inf), float(bound) * 10 + 1]
    for choice in meta.get("choices") or ():
        values += [choice, str(choice).upper(), f" {choice}", str(choice)[:-1]]
    values += [0, -1, 2**31, 2**63] if tp is int else [0.0, -1.0, 1e-30, 1e30] if tp is float else ["", " ", "\n"]
    return values


def field_values(cls, field):
    """A strategy of hostile values for one field of ``cls``."""
    tp, meta = cls.field_types()[field.name], field.metadata
    if _is_tuple_type(tp):
        elem = _element_type(tp)
        near = st.sampled_from(_near(meta, elem))
        too_long = (meta.get("max_len") or 64) + 1
        return st.one_of(
            st.lists(st.one_of(near, ANY_SCALAR), max_size=5).map(tuple),
            st.lists(near, min_size=1, max_size=4),  # a list, not a tuple: accepted as the tuple
            st.just(tuple(getattr(cls.quick(), field.name)) * too_long),
            ANY_VALUE,
        )
    return st.one_of(st.sampled_from(_near(meta, tp)), ANY_VALUE)


def _in_range(meta, tp):
    """Values that pass a field's own checks (so that cross-field rules get exercised)."""
    if meta.get("choices"):
        return st.sampled_from(meta["choices"])
    lo, hi = meta.get("min"), meta.get("max")
    if tp is bool:
        return st.booleans()
    if tp is int:
        lo = -(2**40) if lo is None else int(math.ceil(lo)) + (1 if meta.get("min_exclusive") and float(lo).is_integer() else 0)
        return st.integers(min_value=lo, max_value=2**40 if hi is None else int(hi))
    if tp is float:
        return st.floats(min_value=lo, max_value=hi, exclude_min=bool(meta.get("min_exclusive")) and lo is not None,
                         allow_nan=False, allow_infinity=False)
    return st.text(max_size=8)


def valid_values(cls, field):
    """A strategy of values that satisfy ``field``'s own declared type, bounds and length."""
    tp, meta = cls.field_types()[field.name], field.metadata
    if _is_tuple_type(tp):
        return st.lists(_in_range(meta, _element_type(tp)), min_size=meta.get("min_len", 1),
                        max_size=min(meta.get("max_len") or 6, 6)).map(tuple)
    return _in_range(meta, tp)


F32_TINY, F32_MAX = 1.1754944e-38, 3.4028235e38


def own_rules_hold(meta, tp, value) -> bool:
    """Whether ``value`` satisfies a field's own declared rules, written here independently of
    jaxdyn's validation: the type (bool is not a number; a list stands for a tuple), 64-bit
    integers, finite numbers that float32 represents, the bounds, the choices, the lengths and
    distinctness of lists."""
    if _is_tuple_type(tp):
        if not isinstance(value, (tuple, list)):
            return False
        if not meta.get("min_len", 1) <= len(value) <= (meta.get("max_len") or 10**9):
            return False
        if meta.get("unique") and len(set(value)) != len(value):
            return False
        return all(own_rules_hold(meta, _element_type(tp), v) for v in value)
    if tp is bool:
        return isinstance(value, bool)
    if tp is str:
        ok = isinstance(value, str)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
    else:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
              and (float(value) == 0.0 or F32_TINY <= abs(float(value)) <= F32_MAX))
    if not ok:
        return False
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and not (value > lo if meta.get("min_exclusive") else value >= lo):
        return False
    if hi is not None and not value <= hi:
        return False
    return meta.get("choices") is None or value in meta["choices"]


def _check_rejection(exc: BaseException, cls) -> str:
    message = str(exc)
    assert "\n" not in message, f"not one line: {message!r}"
    m = re.match(r"^(\w+)(\[\d+\])?: ", message)
    fields = {f.name for f in dataclasses.fields(cls)}
    assert m and m.group(1) in fields, f"the message does not name a field of {cls.__name__}: {message!r}"
    return m.group(1)


@pytest.mark.parametrize("name", NAMES)
def test_config_accepts_or_rejects_cleanly(name):
    cls = get(name).config
    base = cls.quick()
    fields = dataclasses.fields(cls)

    @FUZZ
    @given(st.data())
    def check(data):
        # Either a few fields get hostile values, or one or many get values each valid on its own
        # (which only the cross-field rules, check(), can refuse; a single valid change is
        # usually accepted, so the accepted side is reached whatever the experiment's rules).
        mode = data.draw(st.sampled_from(["hostile", "hostile", "one valid", "many valid"]), label="mode")
        hostile = mode == "hostile"
        most = {"hostile": 3, "one valid": 1, "many valid": len(fields)}[mode]
        chosen = data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=most,
                                    unique_by=lambda f: f.name), label="fields")
        strategy = field_values if hostile else valid_values
        changes = {f.name: data.draw(strategy(cls, f), label=f.name) for f in chosen}
        own = {k: own_rules_hold(cls.__dataclass_fields__[k].metadata, cls.field_types()[k], v) for k, v in changes.items()}
        try:
            config = dataclasses.replace(base, **changes)
        except ConfigError as exc:
            named = _check_rejection(exc, cls)
            if not all(own.values()):
                # A value breaking its own field's rules: the message names one such field.
                assert named in changes and not own[named], (changes, own, str(exc))
                COUNTS[name]["rejected, naming the bad field"] += 1
            else:
                COUNTS[name]["rejected by a cross-field rule"] += 1
            return
        # Accepted: then every changed value kept its own field's rules (nothing bad slipped
        # through), and the configuration survives config.json exactly (what --resume reads).
        assert all(own.values()), f"accepted a value that breaks its field's rules: {changes} {own}"
        for field in fields:
            value = getattr(config, field.name)
            assert own_rules_hold(field.metadata, cls.field_types()[field.name], value), (field.name, value)
        text = json.dumps(config.to_dict(), allow_nan=False)
        assert cls.from_dict(json.loads(text)) == config
        COUNTS[name]["accepted"] += 1

    check()
    counts = COUNTS[name]
    print(f"{name}: {dict(counts)}")
    # The fuzz reached both sides of the validation (a property of the inputs, not of the code).
    assert min(counts["rejected, naming the bad field"], counts["accepted"]) >= FUZZ.max_examples // 15, dict(counts)


SET_TEXT = st.one_of(
    st.text(max_size=15),
    st.sampled_from(["", " ", "nan", "-nan", "inf", "-Infinity", "1e999", "-0", "0x10", "1_000", "1e-400", "True", "none",
                     "1,2,,3", ",", "1;2", "=", "a=b", "\n", "\x00", "١٢", "1" * 5000, "9" * 30, "-9" * 10, "[1, 2]", "{}"]),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32).map(str), max_size=5).map(",".join),
)


@pytest.mark.parametrize("name", NAMES)
def test_cli_set_accepts_or_rejects_cleanly(name, tmp_path, capsys):
    cls = get(name).config
    fields = [f.name for f in dataclasses.fields(cls)]
    counts = collections.Counter()

    @settings(FUZZ, max_examples=60)
    @given(st.one_of(st.sampled_from(fields), st.sampled_from(["", " ", "no_such_field", "LR", "seeds ", "-x", "a.b"])), SET_TEXT)
    def check(field, text):
        capsys.readouterr()
        rc = cli.main(["run", name, "--quick", "--dry-run", "--out", str(tmp_path), f"--set={field}={text}"])
        out, err = capsys.readouterr()
        if rc == 0:
            printed = json.loads(out)
            assert cls.from_dict(printed["config"]).to_dict() == printed["config"]
            # What was accepted is what the text says, and keeps the field's own rules.
            tp, meta = cls.field_types()[field.strip()], cls.__dataclass_fields__[field.strip()].metadata
            expected = strict_parse(text, tp)
            got = printed["config"][field.strip()]
            assert expected is not None and own_rules_hold(meta, tp, tuple(got) if isinstance(got, list) else got), (field, text, got)
            assert (list(expected) if isinstance(expected, tuple) else expected) == got, (field, text, got, expected)
            counts["accepted"] += 1
            return
        assert rc == 2, (rc, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("jaxdyn: error: "), err
        message = lines[0][len("jaxdyn: error: "):]
        if field.strip() in fields:
            named = re.match(r"^([^:\[]+)(\[\d+\])?: ", message)
            assert named, message
            if named.group(1) != field.strip():
                # Another field named: only a cross-field rule may do that, so the value must have
                # been a valid one for the field set (parsed the way an independent reader would).
                assert named.group(1) in fields, message
                value = strict_parse(text, cls.field_types()[field.strip()])
                assert value is not None and own_rules_hold(cls.__dataclass_fields__[field.strip()].metadata,
                                                            cls.field_types()[field.strip()], value), (field, text, message)
                counts["rejected by a cross-field rule"] += 1
                return
        elif field.strip():
            assert message.startswith(f"{field.strip()}: unknown field"), message
        else:
            assert message.startswith("--set "), message
        counts["rejected"] += 1

    check()
    print(f"{name} --set: {dict(counts)}")
    COUNTS[name + " --set"].update(counts)
    assert counts["rejected"] >= 15, dict(counts)  # the hostile texts reached the parser


def strict_parse(text: str, tp):
    """How a reader of the help text expects ``--set field=TEXT`` to read: ASCII decimal numbers,
    true/false, comma-separated lists (a trailing comma allowed); None when it is not such a value."""
    if _is_tuple_type(tp):
        parts = text.split(",")
        if len(parts) > 1 and parts[-1].strip() == "":
            parts = parts[:-1]
        values = [strict_parse(p, _element_type(tp)) for p in parts]
        return None if any(v is None for v in values) else tuple(values)
    t = text.strip()
    if tp is str:
        return t
    if tp is bool:
        return {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}.get(t.lower())
    if not t or not t.isascii():
        return None
    try:
        return int(t) if tp is int else float(t)
    except ValueError:
        return None


def test_degenerate_stimuli_are_rejected_before_compiling():
    """Tuning curves that vanish (2 neurons, kappa 1000, both stimuli far from them) would make the
    task's data 0/0 = NaN. The configuration is rejected naming kappa instead. (NaN data in one
    member, and lr 1 with beta0 100, which diverges, are run in test_reliability.py.)"""
    from jaxdyn.experiments import ConfigError
    from jaxdyn.experiments.saxe_reduction import SaxeReductionConfig

    changes = {"num_neurons": 2, "kappa": 1000.0, "theta0": 0.0, "deltas": [90.0], "beta0s": [100.0], "duration": 1e-9}
    with pytest.raises(ConfigError, match="^kappa: "):
        dataclasses.replace(SaxeReductionConfig.quick(), **changes)
