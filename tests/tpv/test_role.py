"""The role's own contract, without TPV: its variables, their specs, and what the template makes of
them. Cheap checks that keep defaults, argument_specs and the template from drifting apart."""

from __future__ import annotations

import ast

import pytest
import yaml

from tests.support.paths import ROOT
from tests.support.rank_fragment import render_fragment

ROLE = ROOT / "roles" / "tpv_broker_rank"
RANK_CODE = ROLE / "templates" / "tpv_broker_rank.py"


def load(relative: str):
    return yaml.safe_load((ROLE / relative).read_text())


def test_every_variable_is_prefixed_and_specified_with_its_default():
    defaults = load("defaults/main.yml")
    specs = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert all(name.startswith("tpv_broker_rank_") for name in defaults)
    assert set(specs) == set(defaults)
    for name, spec in specs.items():
        assert spec["default"] == defaults[name], name


def test_the_fragment_is_readable_by_galaxys_group_only_by_default():
    """The fragment can embed the broker token (tpv_broker_rank_token)."""
    defaults = load("defaults/main.yml")
    assert int(defaults["tpv_broker_rank_mode"], 8) & 0o007 == 0
    assert int(defaults["tpv_broker_rank_mode"], 8) & 0o040  # the job handlers read it
    assert defaults["tpv_broker_rank_group"] == "galaxy"
    template_task = next(t for t in load("tasks/main.yml") if "ansible.builtin.template" in t)
    assert template_task["ansible.builtin.template"]["mode"] == "{{ tpv_broker_rank_mode }}"
    assert template_task["ansible.builtin.template"]["group"] == "{{ tpv_broker_rank_group }}"


def test_tasks_use_fully_qualified_modules():
    for task in load("tasks/main.yml"):
        modules = [k for k in task if k.startswith("ansible.")]
        assert len(modules) == 1 and modules[0].startswith("ansible.builtin."), task["name"]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "tpv_broker_rank_token": 'to"k\\en',
            "tpv_broker_rank_token_env": "TPV_BROKER_TOKEN",
            "tpv_broker_rank_objectstores": {"os_a": {"latitude": 1.5, "longitude": -2}},
            "tpv_broker_rank_entity": "default_tool",
            "tpv_broker_rank_entity_abstract": False,
            "tpv_broker_rank_timeout_s": 1,
            "tpv_broker_rank_routing_mode": "shadow",
            # a multi-line expression, as a YAML block scalar gives it
            "tpv_broker_rank_fallback": (
                "helpers.weighted_random_sampling(\n    candidate_destinations\n)\n"
            ),
        },
    ],
)
def test_template_renders_valid_yaml_and_python(tmp_path, overrides):
    """Values reach the snippet as Python literals, however they are quoted."""
    fragment = yaml.safe_load(render_fragment(tmp_path / "f.yml", **overrides).read_text())
    entity_id = overrides.get("tpv_broker_rank_entity", "default")
    (entity,) = fragment["tools"].values()
    assert list(fragment["tools"]) == [entity_id]
    assert entity["abstract"] is overrides.get("tpv_broker_rank_entity_abstract", True)
    code = entity["rank"]
    tree = ast.parse(code)
    assert isinstance(tree.body[-1], ast.Expr)  # TPV evaluates the last expression as the result
    first = tree.body[0]  # the settings the template writes, before the included code
    assert isinstance(first, ast.Assign) and ast.unparse(first.targets[0]) == "_tb_settings"
    settings = ast.literal_eval(first.value)
    assert settings["token"] == overrides.get("tpv_broker_rank_token", "")
    assert settings["token_env"] == overrides.get("tpv_broker_rank_token_env", "")
    assert settings["timeout_s"] == overrides.get("tpv_broker_rank_timeout_s", 2.0)
    assert isinstance(settings["timeout_s"], float)
    assert yaml.safe_load(settings["objectstores_json"]) == overrides.get(
        "tpv_broker_rank_objectstores", {}
    )
    assert yaml.safe_load(settings["context_keys_json"]) == ["latitude", "longitude"]
    assert settings["mode"] == overrides.get("tpv_broker_rank_routing_mode", "enforce")
    # Then the fallback rank expression as a function of no arguments (None: TPV's order).
    second = tree.body[1]
    assert isinstance(second, ast.Assign) and ast.unparse(second.targets[0]) == "_tb_fallback_rank"
    if "tpv_broker_rank_fallback" in overrides:
        assert isinstance(second.value, ast.Lambda) and not second.value.args.args
        assert ast.unparse(second.value.body) == ast.unparse(
            ast.parse(overrides["tpv_broker_rank_fallback"], mode="eval").body
        )
    else:
        assert isinstance(second.value, ast.Constant) and second.value.value is None
    # The rest is the role's tpv_broker_rank.py, character for character.
    assert code.endswith(RANK_CODE.read_text())
    fallback_source = ast.get_source_segment(code, second)
    assert code[: code.index(RANK_CODE.read_text())].rstrip().endswith(fallback_source)


@pytest.mark.parametrize("kind", ["users", "roles"])
def test_a_user_or_role_entity_gets_the_rank_and_is_never_abstract(tmp_path, kind):
    overrides = {"tpv_broker_rank_entity_kind": kind, "tpv_broker_rank_entity": r"pilot@x\.org"}
    fragment = yaml.safe_load(render_fragment(tmp_path / "f.yml", **overrides).read_text())
    assert list(fragment) == [kind]  # no tool entity touched
    entity = fragment[kind][r"pilot@x\.org"]
    assert entity["abstract"] is False  # TPV refuses jobs whose matching user/role is abstract
    assert isinstance(ast.parse(entity["rank"]).body[-1], ast.Expr)


@pytest.mark.parametrize(
    "name, value",
    [
        ("tpv_broker_rank_routing_mode", "enforcing"),
        ("tpv_broker_rank_routing_mode", False),  # a bare `off` in YAML
        ("tpv_broker_rank_entity_kind", "destinations"),
    ],
)
def test_values_outside_the_choices_are_refused_naming_the_variable(tmp_path, name, value):
    with pytest.raises(ValueError, match=f"{name} must be one of"):
        render_fragment(tmp_path / "f.yml", **{name: value})


def test_the_choices_are_the_ones_the_snippet_and_the_tasks_know():
    specs = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert specs["tpv_broker_rank_routing_mode"]["choices"] == ["enforce", "shadow", "off"]
    assert specs["tpv_broker_rank_entity_kind"]["choices"] == ["tools", "users", "roles"]
    assert '("enforce", "shadow", "off")' in RANK_CODE.read_text()
    checks = next(t for t in load("tasks/main.yml") if "routing mode" in t["name"])
    assert checks["ansible.builtin.assert"]["that"] == [
        "tpv_broker_rank_routing_mode in ['enforce', 'shadow', 'off']",
        "tpv_broker_rank_entity_kind in ['tools', 'users', 'roles']",
    ]


def test_rank_code_holds_no_jinja_so_the_include_copies_it_verbatim():
    """`include` renders the file as a template: a `{{`, `{%` or `{#` in the Python (an f-string
    or a dict of sets, say) would be evaluated by Jinja instead of reaching TPV."""
    source = RANK_CODE.read_text()
    assert [d for d in ("{{", "{%", "{#", "}}", "%}", "#}") if d in source] == []


def test_unknown_variables_are_refused(tmp_path):
    with pytest.raises(KeyError, match="tpv_broker_rank_tiemout_s"):
        render_fragment(tmp_path / "f.yml", tpv_broker_rank_tiemout_s=1)
