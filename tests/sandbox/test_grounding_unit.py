"""Answerer choice, the grounding rules' number reading (a model may write in digits what the evidence
says in words), and hostile token streams against ``GroundedAnswerer``: the model is scripted in process
(the model boundary), everything else is the real answerer."""

from __future__ import annotations

import importlib.util
import json
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tl_mcp.config import ConfigError, Settings
from tl_mcp.sandbox.answerers import Made, answerer_for
from tl_mcp.sandbox.answerers.base import Cue, Question
from tl_mcp.sandbox.answerers.grounding import (
    _MARK,
    CHARS_PER_TOKEN,
    MAX_SENTENCES,
    GroundedAnswerer,
    Ungrounded,
    _Checker,
    _is_refusal,
    _norm_marker,
    _numbers,
    _split,
    evidence_lines,
    messages,
)
from tl_mcp.sandbox.config import SandboxConfig


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("A return ticket costs thirty five euros.", {"35"}),
        ("Bake it at two hundred twenty degrees.", {"220"}),
        ("Two hundred and five people came.", {"205"}),
        ("One thousand two hundred kilometres", {"1200"}),
        ("It costs $2 per pound, or 1.50 a bag.", {"2", "1.5"}),
        ("Revenue grew twenty-five percent in 2026.", {"25%", "2026"}),
        ("Chapter three, then chapter 4.", {"3", "4"}),
        # Read as the quantities they are, not as the digits a moment might also hold.
        ("Sales reached 1,000 units, then 12,500.", {"1000", "12500"}),
        ("It sold 2.5 million copies, then 3 billion.", {"2500000", "3000000000"}),
        ("two billion people and a million more", {"2000000000", "1000000"}),
        ("It grew two point five percent, then 3%, then 4 per cent.", {"2.5%", "3%", "4%"}),
        ("She came 4th, then 21st, then 3.", {"4th", "21st", "3"}),
        ("The 1, 2, 3 of it", {"1", "2", "3"}),
    ],
)
def test_numbers_in_digits_and_words(text: str, numbers: set[str]) -> None:
    assert _numbers(text) == numbers


def test_an_answerer_that_cannot_run_here_is_extractive_and_says_why(tmp_path: Path) -> None:
    def made(**config: object) -> Made:
        return answerer_for(SandboxConfig(data_dir=tmp_path, **config)).made

    assert made(answerer="extractive") == Made("extractive")
    assert made(answerer="auto", llm_model=None, llm_url=None) == Made("extractive")
    assert made(answerer="local", llm_model=None).note == (
        "TL_MCP_SANDBOX_ANSWERER=local but TL_MCP_SANDBOX_LLM_MODEL is not set"
    )
    assert made(answerer="endpoint", llm_url=None).note == (
        "TL_MCP_SANDBOX_ANSWERER=endpoint but TL_MCP_SANDBOX_LLM_URL is not set"
    )
    url = made(llm_url="http://user:secret@127.0.0.1:11434/v1", llm_name="qwen2.5:1.5b")
    assert url == Made("endpoint", "qwen2.5:1.5b at http://127.0.0.1:11434")  # never the credentials
    if importlib.util.find_spec("xllamacpp") is None:
        note = made(llm_model=tmp_path / "model.gguf").note
        assert note is not None and "xllamacpp is not installed (pip install 'tl-mcp[llm]')" in note


def test_a_model_url_that_is_not_http_is_refused_with_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"TL_MCP_SANDBOX_LLM_URL must be an http\(s\) URL"):
        SandboxConfig(data_dir=tmp_path, llm_url="localhost:11434")
    with pytest.raises(ConfigError, match="TL_MCP_SANDBOX_LLM_URL / --sandbox-llm-url"):
        Settings.from_sources(env={"TL_MCP_SANDBOX_LLM_URL": "localhost:11434"})


def test_a_refused_model_url_is_never_echoed_as_it_may_carry_credentials(tmp_path: Path) -> None:
    # No scheme, so refused; the key in it must not reach the error (stderr at start-up, logs).
    url = "ollama:sk-SECRET123@127.0.0.1:11434/v1"
    with pytest.raises(ValueError) as sandbox_error:
        SandboxConfig(data_dir=tmp_path, llm_url=url)
    with pytest.raises(ConfigError) as settings_error:
        Settings.from_sources(env={"TL_MCP_SANDBOX_LLM_URL": url})
    for error in (sandbox_error.value, settings_error.value):
        assert "SECRET123" not in str(error) and "SECRET123" not in repr(error)
        assert "http://127.0.0.1:11434/v1" in str(error)  # still says what a good value looks like


APPLES = Cue("[00:06-00:12]", "speech", "Fresh apples cost two dollars per pound at the market")
SALES = Cue("[00:20-00:30]", "on screen", "Quarterly sales grew 3 percent to 1 million units in 2025")
TICKETS = Cue("[00:40-00:50]", "speech", "Thirty people bought tickets for the concert hall")
EXTRACTIVE = "Fresh apples cost two dollars per pound [00:06-00:12]"


class Scripted:
    """A chat model that streams the given tokens, recording how many it had produced when each delta
    left the answerer."""

    made = Made("endpoint", "scripted")

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.produced = 0

    def chat(self, messages: list[dict[str, str]], schema: object, max_tokens: int) -> Iterator[str]:
        for token in self.tokens:
            self.produced += 1
            yield token


def answer(tokens: list[str], cues: list[Cue] | None = None, max_tokens: int = 200) -> tuple[str, Made]:
    question = Question("q", cues or [APPLES, SALES, TICKETS], lambda: EXTRACTIVE, max_tokens=max_tokens)
    reply = GroundedAnswerer(Scripted(tokens)).answer(question)
    return "".join(reply), reply.made


def test_one_token_ending_several_sentences_sends_no_more_than_max_sentences() -> None:
    said = ["Fresh apples cost two dollars per pound [00:06-00:12].", "Sales grew 3 percent [00:20-00:30]."]
    text, made = answer([" ".join(said * 3) + " Thirty"])
    assert MAX_SENTENCES == 3
    assert text == " ".join([*said, said[0]]) + " " and made.note is None


def test_markers_between_sentences_do_not_join_them_past_max_sentences() -> None:
    # Each citation after its sentence's full stop: the sentences are still counted one by one.
    said = [
        "Fresh apples cost two dollars per pound. [00:06-00:12] ",
        "Sales grew 3 percent. [00:20-00:30] ",
        "Thirty people bought tickets.\n[00:40-00:50]\n",
    ]
    more = "Pears are not sold at the market on Sundays. [00:30-00:36] Fresh apples cost two dollars."
    text, made = answer(re.findall(r"\s*\S+", "".join(said) + more))
    assert text == "".join(said) and made.note is None


@pytest.mark.parametrize(
    ("tokens", "broken"),
    [
        (["Sales grew 3 percent [00:20-", "00:", "30 in 2025."], "[00:20-00:30"),
        (["Sales grew 3 percent 00:30] in 2025."], "00:30]"),
        (["Sales grew 3 percent [00:20 in 2025."], "[00:20"),
    ],
)
def test_a_marker_that_is_not_whole_is_named_as_the_reason(tokens: list[str], broken: str) -> None:
    text, made = answer(tokens)
    reason = f"it writes {broken}, not a whole marker such as [00:06-00:12]"
    assert reason in text and made.note is not None and reason in made.note
    assert "00:" not in text.split(reason)[0].replace("[00:06-00:12]", "")


def test_a_model_that_writes_only_a_marker_or_blanks_is_set_aside_saying_so() -> None:
    for tokens, reason in [
        (["[00:06-", "00:12]"], "it gave a citation but no answer"),
        (["  ", "\n", " ", "\n\n"], "the model returned no text"),
    ]:
        text, made = answer(tokens)
        assert text.startswith(f"The endpoint model scripted answer was set aside: {reason}. ")
        assert text.endswith(EXTRACTIVE) and made.answerer == "extractive"


def test_early_words_never_end_in_part_of_a_number() -> None:
    # "Thirty" is in the evidence, "thirty five" is not: the first word must not go out alone.
    tokens = ["Thirty", " five", " people", " bought", " tickets", " for", " the", " concert", " hall."]
    text, made = answer(tokens, [TICKETS])
    assert text.startswith("The endpoint model scripted answer was set aside: the number 35 is not in")
    assert made.answerer == "extractive"
    # The same for digits split by a space, and a scale word after a number the evidence has.
    text, _ = answer(["Sales grew 3", " 5", " percent", " to", " 1", " million units."], [SALES])
    assert text.startswith("The endpoint model scripted answer was set aside: the number 3 is not in")
    text, _ = answer(["Fresh apples at the market cost", " two", " million", " dollars."], [APPLES])
    assert text.startswith("Fresh apples at the market cost\n\n(The rest of the model's sentence was set")


@pytest.mark.parametrize(
    ("tokens", "number"),
    [
        (["Fresh apples cost 2 million", " dollars per pound."], "2000000"),
        (["Fresh apples cost two billion dollars per pound."], "2000000000"),
        (["Fresh apples cost a thousand dollars per pound."], "1000"),
        (["Sales grew 3", " percent to 1,", "000 units in 2025."], "1000"),
        (["Sales grew 3rd in 2025 to 1 million units."], "3rd"),
    ],
)
def test_a_quantity_the_evidence_does_not_say_is_set_aside(tokens: list[str], number: str) -> None:
    text, made = answer(tokens)
    reason = f"the number {number} is not in any single retrieved moment"
    assert reason in text and made.note is not None and reason in made.note
    assert number not in text.split(reason)[0].replace(",", "")


@pytest.mark.parametrize("invisible", ["\u200b", "\u2060", "\ufeff", "\u00ad"])
def test_a_number_split_by_an_invisible_character_is_the_number_the_caller_sees(invisible: str) -> None:
    cue = Cue("[00:50-00:55]", "speech", "2 apples cost 5 dollars at the market stall")
    text, made = answer([f"2{invisible}5", " apples cost 5 dollars at the market stall."], [cue])
    assert "the number 25 is not in" in text and made.answerer == "extractive"


def test_a_count_is_not_a_share() -> None:
    # "percent" is a word a sentence may add (it frames a number), not one that makes thirty people
    # thirty percent of them.
    text, made = answer(re.findall(r" ?\S+", "Thirty percent of people bought tickets for the concert hall."))
    assert "the number 30% is not in" in text and made.answerer == "extractive"
    said = "Quarterly sales grew 3% to 1 million units in 2025."
    assert answer(re.findall(r" ?\S+", said))[0] == said + "\n\nFrom [00:20-00:30]."


@pytest.mark.parametrize(
    ("sentence", "word"),
    [
        ("Fresh apples do not cost two dollars per pound [00:06-00:12].", "not"),
        ("Fresh apples doesn\u2019t cost two dollars per pound at the market.", "not"),
        ("Fresh apples never cost two dollars per pound at the market.", "never"),
        ("Fresh apples cost two dollars per pound only at the market [00:06-00:12].", "only"),
        ("Fresh apples cost more than two dollars per pound at the market.", "than"),
        ("Fresh apples cost two dollars per pound, except at the market.", "except"),
    ],
)
def test_a_negation_or_qualifier_the_moment_does_not_say_is_set_aside(sentence: str, word: str) -> None:
    text, made = answer(re.findall(r" ?\S+", sentence))
    reason = f'it says "{word}", which is not in'
    assert reason in text and made.note is not None and reason in made.note
    # What went out early, if anything, is only words the apples moment says.
    said = text.split("\n\n(The rest")[0] if "(The rest" in text else ""
    assert said.rstrip(",") in "Fresh apples cost two dollars per pound"


def test_a_negation_the_moment_says_is_the_models_to_repeat() -> None:
    cue = Cue("[00:01-00:04]", "speech", "Pears are not sold at the market on Sundays")
    text, made = answer(re.findall(r" ?\S+", "Pears are not sold at the market on Sundays."), [cue])
    assert text == "Pears are not sold at the market on Sundays.\n\nFrom [00:01-00:04]." and made.note is None


def test_a_refusal_that_starts_with_grounded_words_is_not_sent_as_an_answer() -> None:
    tokens = ["Fresh", " apples", " per", " pound", " price", " is", " not", " stated", "."]
    text, made = answer(tokens)
    assert "not stated" not in text and "set aside" in text and text.endswith(EXTRACTIVE)
    assert made.note is not None and made.note.startswith("partly extractive")


def _seconds(tokens: list[str]) -> float:
    """The best of three runs' time to answer from ``tokens`` (the best, so a busy machine's pauses
    count less)."""
    best = float("inf")
    for _ in range(3):
        question = Question("q", [APPLES], lambda: EXTRACTIVE, max_tokens=2000)
        start = time.perf_counter()
        "".join(GroundedAnswerer(Scripted(tokens)).answer(question))
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize(
    "token",
    [
        "新",  # CJK: no spaces, so no word ever ends and nothing goes out early
        " apples",  # every word held by the moment: the sentence goes out early as it grows
        " zebra",  # no word held: every early judgement fails
    ],
)
def test_a_long_unfinished_sentence_costs_linear_time_in_its_length(token: str) -> None:
    # About 1 KB and 8 KB of one sentence: re-judging all of it for every token would cost 64 times
    # as much for eight times the text; linear costs eight.
    count = 1000 // len(token)
    ratio = _seconds([token] * count * 8) / _seconds([token] * count)
    assert ratio < 24, f"{ratio:.0f} times slower for 8 times the text"


def test_a_reason_names_a_huge_word_only_by_its_start() -> None:
    text, made = answer(["z" * 8000, "."], [APPLES], max_tokens=2000)
    assert made.note is not None and len(made.note) < 400, made.note
    assert "set aside: its key words (zzz" in text and len(text) < 600


def _deltas(tokens: list[str], cues: list[Cue]) -> list[tuple[str, int]]:
    """Each delta with how many of the model's tokens had been produced when it left the answerer."""
    model = Scripted(tokens)
    question = Question("q", cues, lambda: EXTRACTIVE, max_tokens=200)
    return [(delta, model.produced) for delta in GroundedAnswerer(model).answer(question)]


PEARS = Cue("[00:30-00:36]", "speech", "Pears are not sold at the market on Sundays / apples are")


@pytest.mark.parametrize(
    "sentence",
    [
        "Pears are sold at the market on Sundays.",
        "Pears are sold at the market on Sundays [00:30-00:36].",
    ],
)
def test_a_sentence_that_leaves_out_the_moments_negation_is_set_aside(sentence: str) -> None:
    text, made = answer(re.findall(r" ?\S+", sentence), [PEARS])
    reason = 'it leaves out the "not" before "sold" in'
    assert reason in text and made.note is not None and reason in made.note
    # Nothing went out early either: "Pears are sold at the market" is every word the moment's own.
    assert "Pears are sold" not in text


def test_a_negated_word_the_moment_also_says_plainly_may_be_said_plainly() -> None:
    cue = Cue("[00:30-00:36]", "speech", "Pears are not sold on Sundays, but apples are sold at the market")
    text, made = answer(re.findall(r" ?\S+", "Apples are sold at the market."), [cue])
    assert text == "Apples are sold at the market.\n\nFrom [00:30-00:36]." and made.note is None


def test_early_words_must_be_the_moments_own_words_not_words_sharing_their_first_letters() -> None:
    cue = Cue("[00:40-00:45]", "speech", "The blue model was discounted last spring")
    tokens = re.findall(r" ?\S+", "The blue model was discontinued last spring.")
    deltas = _deltas(tokens, [cue])
    # "discontinued" is not "discounted": nothing of the sentence goes out before the sentence check.
    assert all(produced == len(tokens) for _, produced in deltas), deltas
    held = _deltas(re.findall(r" ?\S+", "The blue model was discounted last spring."), [cue])
    assert "".join(d for d, produced in held if produced <= 6) == "The blue model was discounted"


CJK = Cue("[00:01-00:05]", "speech", "新鮮なリンゴは一ポンド二ドルです。市場で売っています")


@pytest.mark.parametrize(
    ("tokens", "reason"),
    [
        # Written without spaces, the sentence is not one long "word" whose first letters are the
        # evidence's: its numerals and its characters are read.
        (["新鮮なリンゴは", "一ポンド", "九十ドルです。"], "the number 90 is not in"),
        (["新鮮なリンゴは", "みかんより高く", "毎日港で漁師が", "運んできます。"], "its key words ("),
    ],
)
def test_an_unspaced_sentence_is_read_by_its_characters(tokens: list[str], reason: str) -> None:
    text, made = answer(tokens, [CJK])
    assert reason in text and made.note is not None and reason in made.note
    assert "九十" not in text and "漁師" not in text


def test_unspaced_sentences_end_at_their_own_full_stops() -> None:
    said = ["新鮮なリンゴは一ポンド二ドルです。", "市場で売っています。"]
    tokens = ["新鮮なリンゴは", "一ポンド", "二ドルです。", "市場で", "売っています。", "九十"]
    deltas = _deltas(tokens, [CJK])
    # The first sentence goes out when the second starts, not with the whole answer; the third
    # sentence never ends, and its number is not the evidence's.
    assert "".join(d for d, produced in deltas if produced == 4) == said[0]
    text = "".join(d for d, _ in deltas)
    assert text.startswith("".join(said)) and "the number 90 is not in" in text


@pytest.mark.parametrize(
    "written", [[" [00:06 - 00:12]"], [" [ 00:06-00:12 ]"], [" [00:06 -", " 00:12]"], [" [00:06-", "00:12]"]]
)
def test_a_marker_written_loosely_is_named_as_the_evidence_writes_it(written: list[str]) -> None:
    # A citation is found in the text by its exact marker: written otherwise, the answer cited nothing.
    said = re.findall(r" ?\S+", "Fresh apples cost two dollars per pound")
    text, made = answer([*said, *written, "."])
    loose = "".join(written) != " [00:06-00:12]"
    assert text == "".join([*said, *written, "."]) + ("\n\nFrom [00:06-00:12]." if loose else "")
    assert made.note is None


@pytest.mark.parametrize(
    "tokens",
    [
        ["\n", "Fresh apples cost two dollars per pound."],
        ["\n\nFresh apples cost two dollars per pound [00:06-00:12]. Sales grew 3 percent."],
    ],
)
def test_an_answer_that_starts_with_a_line_break_is_answered(tokens: list[str]) -> None:
    # It crashed (IndexError): the line break was taken for the end of an empty first sentence.
    text, made = answer(tokens)
    assert text.startswith("".join(tokens)) and made.note is None


MOMENTS = [APPLES, SALES, TICKETS, PEARS]
_EVIDENCE_WORDS = " ".join(c.text for c in MOMENTS).replace("/", " ").split()
_FOREIGN = ["zebra", "orchard", "blue", "farmers", "seven", "35", "7", "12", "2.5", "1,000", "4th", "million"]
_PIECES = [" ", "  ", ", ", ". ", "! ", "\n", "\n\n", " not", " never", " only", " no longer", " except"]
_MARKERS = ["[00:06-00:12]", "[00:20-00:30]", "[00:40-00:50]", "[09:00-09:10]", "[00:06 - 00:12]", "[00:06-"]


def _stream(rng: random.Random) -> list[str]:
    """A model's answer made of evidence words, foreign words, numbers, flips and markers, cut into tokens
    at random places (inside words, numbers and markers too)."""
    moment = rng.choice(MOMENTS).text.split()
    words: list[str] = []
    for _ in range(rng.randint(1, 40)):
        roll = rng.random()
        if roll < 0.45:  # runs of one moment's words, so that some sentences hold
            start = rng.randrange(len(moment))
            words.extend(moment[start : start + rng.randint(1, 6)])
        elif roll < 0.6:
            words.append(rng.choice(_EVIDENCE_WORDS))
        elif roll < 0.72:
            words.append(rng.choice(_FOREIGN))
        elif roll < 0.85:
            words.append(rng.choice(_PIECES).strip() or ".")
        else:
            words.append(rng.choice(_MARKERS))
    text = ""
    for word in words:
        text += word if word in ".,!" else rng.choice([" ", " ", " ", "\n", ""]) + word
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(0, len(text) // 2))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def _replay(released: str) -> None:
    """Checks what a fresh checker would have let out: every sentence of ``released`` but the last
    passes the sentence check, and the last passes it too or is a start that one moment holds."""
    checker = _Checker(evidence_lines(MOMENTS))
    sentences = _split(released)
    for sentence in sentences[:-1]:
        checker.check(sentence)
    if sentences:
        last = sentences[-1]
        try:
            checker.check(last)
        except Ungrounded:
            assert checker.holds(last.rstrip()), f"released unchecked: {last!r}"


def test_random_token_streams_release_only_checked_sentences_and_a_held_start() -> None:
    rng = random.Random(20261201)
    known = {n for c in MOMENTS for n in re.findall(r"\d+", _MARK.sub(" ", c.text))}
    for _ in range(300):
        tokens = _stream(rng)
        raw = "".join(tokens)
        deltas = _deltas(tokens, MOMENTS)
        text = "".join(d for d, _ in deltas)
        # What the model wrote that has reached the caller each time the answerer asks the model for its
        # next token (the answerer's own words after it, the fallback or the "From" line, never continue
        # the model's text).
        released = ""
        for i, (delta, produced) in enumerate(deltas):
            if not raw.startswith(released + delta):
                break
            released += delta
            if i + 1 == len(deltas) or deltas[i + 1][1] != produced:
                _replay(released)
        assert len(_split(released)) <= MAX_SENTENCES
        assert not _is_refusal(released), released
        evidence = _numbers(" ".join(c.text for c in MOMENTS))
        assert all(_numbers(_MARK.sub(" ", s)) <= evidence for s in _split(released)), (raw, released)
        assert set(re.findall(r"\d+", _MARK.sub(" ", released))) <= known, (raw, released)
        # Only retrieved moments are cited, and each citation is in the text as the evidence writes it.
        cited = {_norm_marker(m) for m in _MARK.finditer(released)}
        assert cited <= {c.marker for c in MOMENTS}
        assert all(mark in text for mark in cited)
        rest = text[len(released) :]
        assert rest == "" or rest.lstrip("\n").startswith(("(The ", "From [", "The endpoint model")), rest


def test_a_structured_field_takes_the_number_of_a_share_or_an_ordinal() -> None:
    schema = {
        "type": "object",
        "properties": {"growth_percent": {"type": "number"}, "place": {"type": "integer"}},
    }
    cue = Cue("[00:20-00:30]", "on screen", "Quarterly sales grew 3 percent; the team came 4th in 2025")
    for value, made_by in [
        ({"growth_percent": 3, "place": 4}, "endpoint"),
        ({"growth_percent": 7}, "extractive"),
    ]:
        question = Question("q", [cue], lambda: "{}", schema=schema)
        reply = GroundedAnswerer(Scripted([json.dumps(value)])).answer(question)
        text = "".join(reply)
        assert reply.made.answerer == made_by, reply.made
        assert text == (json.dumps(value) if made_by == "endpoint" else "{}")


@pytest.mark.parametrize(
    "tokens",
    [
        ["Fresh apples cost two dollars per pound [1]."],
        ["Fresh apples cost two dollars per pound ", "[", "1", "]", "."],
        ["Fresh apples cost two dollars per pound [ 1", " ]."],
    ],
)
def test_a_line_number_the_model_cites_reaches_the_caller_as_its_moments_marker(tokens: list[str]) -> None:
    # The prompt numbers the evidence lines (a number is 3 tokens, a time marker 13); the caller reads times.
    text, made = answer(tokens)
    assert text == "Fresh apples cost two dollars per pound [00:06-00:12]." and made.note is None


def test_the_prompt_numbers_its_evidence_lines_in_the_order_given() -> None:
    question = Question("q", [APPLES, SALES], lambda: EXTRACTIVE)
    evidence = messages(question, [APPLES, SALES])[-1]["content"]
    assert evidence.startswith(f"Evidence:\n[1] (speech) {APPLES.text}\n[2] (on screen) {SALES.text}\n")


@pytest.mark.parametrize(
    "tokens", [["Fresh apples cost two dollars per pound [7]."], ["[9] Fresh apples cost two dollars"]]
)
def test_a_line_number_no_evidence_line_has_is_refused_as_a_citation(tokens: list[str]) -> None:
    text, made = answer(tokens)
    assert made.note is not None and "cites [" in made.note
    assert "which is not one of the retrieved moments" in made.note and text.endswith(EXTRACTIVE)


def test_a_bracket_that_is_no_line_number_is_the_models_text() -> None:
    text, _ = answer(["Fresh apples [", "organic] cost two dollars per pound [1]."])
    assert text.startswith("Fresh apples [organic] cost")


class Counted(Scripted):
    """A scripted model whose tokens are made one by one as they are asked for."""

    def __init__(self, tokens: Iterator[str]) -> None:
        super().__init__([])
        self.stream = tokens

    def chat(self, messages: list[dict[str, str]], schema: object, max_tokens: int) -> Iterator[str]:
        for token in self.stream:
            self.produced += 1
            yield token


def test_an_open_bracket_followed_by_endless_blanks_is_still_cut_at_max_tokens() -> None:
    # A server may ignore max_tokens: "[" then blanks must not be held (and re-read) unbounded while the
    # translator waits for a line number that never comes.
    model = Counted(iter(["Fresh apples cost two dollars [", *[" "] * 20_000]))
    question = Question("q", [APPLES, SALES], lambda: EXTRACTIVE, max_tokens=20)
    reply = GroundedAnswerer(model).answer(question)
    text = "".join(reply)
    assert "ran longer than the 20 tokens" in (reply.made.note or "") and text.endswith(EXTRACTIVE)
    assert model.produced < 20 * CHARS_PER_TOKEN


@pytest.mark.parametrize(
    ("written", "cited"),
    [
        ("[1,3]", [APPLES, TICKETS]),
        ("[1, 3]", [APPLES, TICKETS]),
        ("[1][3]", [APPLES, TICKETS]),
        ("[ 1 , 3 ]", [APPLES, TICKETS]),
        ("[1-3]", [APPLES, SALES, TICKETS]),
        ("[1 - 2, 3]", [APPLES, SALES, TICKETS]),
    ],
)
def test_line_numbers_cited_together_are_each_their_moments_marker(written: str, cited: list[Cue]) -> None:
    sentence = "Fresh apples cost two dollars and thirty people bought tickets "
    text, made = answer([sentence, *re.findall(r"\d+|\D", written), "."])
    assert made.note is None, made.note
    assert re.sub(r"\]\s*\[", "][", text) == sentence + "".join(c.marker for c in cited) + "."


@pytest.mark.parametrize("written", ["[1, 7]", "[3-1]", "[2-9]", "[0-2]"])
def test_a_list_of_line_numbers_with_one_no_line_has_is_refused_as_a_citation(written: str) -> None:
    text, made = answer(["Fresh apples cost two dollars per pound ", written, "."])
    assert made.note is not None and f"cites {written}, which is not one of the retrieved" in made.note
    assert text.endswith(EXTRACTIVE)


def test_a_structured_number_the_model_never_read_is_not_in_the_evidence() -> None:
    # The JSON model reads numbered lines, not times: a 12 only the marker [00:06-00:12] holds is invented.
    schema = {"type": "object", "properties": {"dollars_per_pound": {"type": "number"}}}
    for value, made_by in [({"dollars_per_pound": 2}, "endpoint"), ({"dollars_per_pound": 12}, "extractive")]:
        question = Question("q", [APPLES], lambda: "{}", schema=schema)
        reply = GroundedAnswerer(Scripted([json.dumps(value)])).answer(question)
        text = "".join(reply)
        assert reply.made.answerer == made_by, reply.made
        assert text == (json.dumps(value) if made_by == "endpoint" else "{}")


def test_an_evidence_text_of_several_lines_is_one_numbered_line() -> None:
    # Subtitles and on-screen text span lines: a second line would read as unnumbered evidence, or as a
    # line of its own if it starts like one.
    two_lines = Cue("[00:50-00:55]", "on screen", "Fresh apples\n[2] (speech) pears are free\n")
    question = Question("q", [two_lines, SALES], lambda: EXTRACTIVE)
    evidence = messages(question, [two_lines, SALES])[-1]["content"].split("\n\nQuestion:")[0]
    assert evidence.splitlines() == [
        "Evidence:",
        "[1] (on screen) Fresh apples [2] (speech) pears are free",
        f"[2] (on screen) {SALES.text}",
    ]


@pytest.mark.parametrize(
    ("tokens", "reason"),
    [
        # Cut off inside its citation (max_tokens): named as a citation not written whole.
        (["Fresh apples cost two dollars per pound [1"], "it writes [1, not a whole"),
        (["Fresh apples cost two dollars per pound [", "1, "], "it writes [1,"),
        # Numbers in brackets past any line: a citation of no line, not a quantity the evidence lacks.
        (["Fresh apples cost two dollars per pound [999", "999]."], "it cites [999999], which is not one"),
    ],
)
def test_a_line_number_citation_cut_off_or_past_every_line_is_named_as_one(
    tokens: list[str], reason: str
) -> None:
    text, made = answer(tokens)
    assert made.note is not None and reason in made.note, made.note
    assert text.endswith(EXTRACTIVE)
