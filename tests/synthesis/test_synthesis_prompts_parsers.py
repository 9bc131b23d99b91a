"""Prompt templates (version 1 = the prompts of the recorded SciFact data) and the strict answer parsers."""

from __future__ import annotations

import re

import pytest

from syntriever_hf.llm import Completion, ParseError
from syntriever_hf.synthesis.parsers import parse_text, parse_text_json, parse_verdict, parse_verdict_json
from syntriever_hf.synthesis.prompts import PromptTemplate, stage1_prompt, stage1_prompts
from tests.conftest import SYNTHETIC_SCIFACT_DIR


def readme_prompt(label: str) -> str:
    """The quoted text of prompt ``label`` in the recorded data's README, whitespace normalised."""
    readme = (SYNTHETIC_SCIFACT_DIR / "README.md").read_text(encoding="utf-8")
    match = re.search(rf'^- {label} \([^)]*\): (?:same persona; )?"(.*?)"(?: \(|\n- |\n\n)', readme,
                      re.DOTALL | re.MULTILINE)
    assert match, f"prompt {label} not found in the README"
    return " ".join(match.group(1).split())


def as_readme(template: PromptTemplate) -> str:
    """Our template written the README's way: paragraph breaks as ' / ', {query} as {q}, {passage} as {p}."""
    text = template.text.replace("\n\n", " / ").replace("{query}", "{q}").replace("{passage}", "{p}")
    return " ".join(text.split())


@pytest.mark.parametrize(("task", "label"), [("positive", "A"), ("cot", "C"), ("verify", "V")])
def test_version_1_prompts_are_the_recorded_datas_prompts(task: str, label: str) -> None:
    template = stage1_prompt(task)
    assert template.version == 1
    assert as_readme(template) == readme_prompt(label)


def test_version_1_negative_prompt_is_prompt_b_with_the_same_persona() -> None:
    negative, positive = as_readme(stage1_prompt("negative")), as_readme(stage1_prompt("positive"))
    persona_and_query = positive.split(" / ")[0]
    assert persona_and_query.endswith("experience. Query: {q}")
    assert negative == f"{persona_and_query} / {readme_prompt('B')}"


def test_every_template_has_a_distinct_hash_and_tag() -> None:
    templates = [*stage1_prompts().values(), *stage1_prompts(structured=True).values()]
    assert len({t.sha256 for t in templates}) == len({t.tag for t in templates}) == len(templates) == 8
    edited = PromptTemplate("stage1-cot", 1, stage1_prompt("cot").text + " ")
    assert edited.tag != stage1_prompt("cot").tag  # same name and version, edited text: a new key space


def test_render_fills_placeholders_in_one_pass() -> None:
    verify = stage1_prompt("verify")
    text = verify.render(query="Is {passage} a placeholder?", passage="A passage about {query}.")
    assert "Query: Is {passage} a placeholder?" in text
    assert "Passage: A passage about {query}." in text
    assert verify.fields == ("query", "passage")


def test_render_names_missing_and_unexpected_values() -> None:
    with pytest.raises(ValueError, match=r"missing values \['passage'\], unexpected values \['passages'\]"):
        stage1_prompt("verify").render(query="q", passages="p")


def test_structured_prompts_carry_a_strict_json_schema() -> None:
    verify = stage1_prompt("verify", structured=True)
    schema = verify.response_format["json_schema"]["schema"]
    assert schema["properties"]["verdict"]["enum"] == ["yes", "no"]
    assert schema["additionalProperties"] is False
    assert verify.response_format["json_schema"]["strict"] is True


def answer(text: str, finish_reason: str | None = "stop") -> Completion:
    return Completion(text, finish_reason, 10, 2)


@pytest.mark.parametrize(("text", "verdict"), [("yes", "yes"), ("No", "no"), ("  YES \n", "yes")])
def test_verdicts_are_exact_tokens(text: str, verdict: str) -> None:
    assert parse_verdict(answer(text)) == verdict


@pytest.mark.parametrize("text", ["Yes.", "no, it is not", "I do not know", "not relevant", "", "yes no"])
def test_anything_but_an_exact_verdict_is_refused(text: str) -> None:
    with pytest.raises(ParseError, match="expected exactly 'yes' or 'no', got"):
        parse_verdict(answer(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"verdict": "maybe"}', "expected 'verdict' to be 'yes' or 'no'"),
        ('{"verdict": "yes", "why": "x"}', "exactly the key 'verdict'"),
        ("yes", "expected a JSON object"),
    ],
)
def test_structured_verdicts_are_strict(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_verdict_json(answer(text))


def test_structured_verdict_and_text() -> None:
    assert parse_verdict_json(answer('{"verdict": "no"}')) == "no"
    assert parse_text_json(answer('{"text": " A passage. "}')) == "A passage."
    with pytest.raises(ParseError, match="non-empty string in 'text'"):
        parse_text_json(answer('{"text": "  "}'))


def test_text_answers_must_be_complete_and_non_empty() -> None:
    assert parse_text(answer("  A passage.\n")) == "A passage."
    with pytest.raises(ParseError, match=r"^empty answer$"):
        parse_text(answer(" \n"))
    with pytest.raises(ParseError, match="cut off at max_tokens"):
        parse_text(answer("A passage that stops in the", "length"))
    with pytest.raises(ParseError, match="the model refused"):
        parse_text(answer("", "refusal"))
    with pytest.raises(ParseError, match="cut off at max_tokens"):
        parse_verdict(answer("y", "length"))
