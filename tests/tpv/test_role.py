"""The role's own contract, without TPV: its variables, their specs, and what the template makes of
them. Cheap checks that keep defaults, argument_specs and the template from drifting apart."""

from __future__ import annotations

import ast

import pytest
import yaml

from tests.tpv import support

ROLE = support.ROOT / "roles" / "tpv_broker_rank"


def load(relative: str):
    return yaml.safe_load((ROLE / relative).read_text())


def test_every_variable_is_prefixed_and_specified_with_its_default():
    defaults = load("defaults/main.yml")
    specs = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert all(name.startswith("tpv_broker_rank_") for name in defaults)
    assert set(specs) == set(defaults)
    for name, spec in specs.items():
        assert spec["default"] == defaults[name], name


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
        },
    ],
)
def test_template_renders_valid_yaml_and_python(tmp_path, overrides):
    """Values reach the snippet as Python literals, however they are quoted."""
    fragment = yaml.safe_load(support.render_fragment(tmp_path / "f.yml", **overrides).read_text())
    entity_id = overrides.get("tpv_broker_rank_entity", "default")
    (entity,) = fragment["tools"].values()
    assert list(fragment["tools"]) == [entity_id]
    assert entity["abstract"] is overrides.get("tpv_broker_rank_entity_abstract", True)
    code = entity["rank"]
    tree = ast.parse(code)
    assert isinstance(tree.body[-1], ast.Expr)  # TPV evaluates the last expression as the result
    literals = {}  # the first assignment of each name: the rendered value
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            literals.setdefault(node.targets[0].id, node.value)
    assert ast.literal_eval(literals["_tb_token"]) == overrides.get("tpv_broker_rank_token", "")
    assert ast.literal_eval(literals["_tb_timeout_s"]) == overrides.get(
        "tpv_broker_rank_timeout_s", 2.0
    )
    objectstores = literals["_tb_objectstores"]  # json.loads("...") of the role variable
    assert yaml.safe_load(ast.literal_eval(objectstores.args[0])) == overrides.get(
        "tpv_broker_rank_objectstores", {}
    )
    assert ("TPV_BROKER_TOKEN" in code) == ("tpv_broker_rank_token_env" in overrides)


def test_unknown_variables_are_refused(tmp_path):
    with pytest.raises(KeyError, match="tpv_broker_rank_tiemout_s"):
        support.render_fragment(tmp_path / "f.yml", tpv_broker_rank_tiemout_s=1)
