from __future__ import annotations

import pytest

from gateway.routing.text import (
    FILE_NEED,
    clauses,
    example_requests,
    implied_needs,
    mentions,
    query_terms,
    schema_text,
    slug,
    tokens,
)


def test_tokens_split_identifiers_and_stem() -> None:
    assert tokens("getCurrentTime") == ["get", "current", "time"]
    assert tokens("list_pull-requests") == ["list", "pull", "request"]
    assert tokens("HTTPServer") == ["http", "server"]


def test_query_terms_drop_stopwords_and_discount_generic_verbs() -> None:
    terms = query_terms("Can you please get me the weather?")
    assert set(terms) == {"get", "weather"}
    assert terms["weather"] == 1.0
    assert terms["get"] < 0.5


def test_schema_text_reads_parameter_names_and_descriptions() -> None:
    schema = {
        "type": "object",
        "properties": {
            "repoPath": {"type": "string", "description": "Path to the repository"},
            "items": {"type": "array", "items": {"properties": {"due_date": {}}}},
        },
    }
    text = schema_text(schema)
    assert "repo Path" in text and "Path to the repository" in text and "due date" in text
    assert schema_text(None) == ""


def test_mentions_are_found_and_stripped() -> None:
    assert mentions("@git show the log, ask @time.") == (["git", "time."], "show the log, ask")
    assert mentions("mail bob@example.com") == ([], "mail bob@example.com")
    assert slug("mcp-server_Time") == "mcpservertime"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what time is it in London?", []),
        (
            "Read the paper on arXiv. Then write a summary to notes.md",
            ["Read the paper on arXiv", "write a summary to notes.md"],
        ),
        (
            "Commit my work to git, then check the weather forecast",
            ["Commit my work to git", "check the weather forecast"],
        ),
    ],
)
def test_clauses_split_multi_part_requests(text: str, expected: list[str]) -> None:
    assert clauses(text) == expected


def test_implied_needs_from_paths_and_urls() -> None:
    assert implied_needs("save it to /root/markdown/report.md") == [
        "read or write a file in a local directory"
    ]
    assert implied_needs("summarize https://example.com/a") == [
        "fetch the content of a web page URL"
    ]
    assert implied_needs("what time is it?") == []


@pytest.mark.parametrize(
    ("prompt", "needs_files"),
    [
        ("What files are in my /root/music folder?", True),
        ("write the summary to ~/notes/", True),
        ("see README.md.", True),
        (r"open C:\Users\me\notes.txt", True),
        # Formats that a document, spreadsheet or media tool handles imply no generic file need.
        ("Read the paper in /root/pdf/WebArena.pdf.", False),
        ("save it as /root/word/report.docx", False),
        # Abbreviations and product names are not file names.
        ("e.g. the U.S. economy", False),
        ("upgrade to Node.js 22", False),
    ],
)
def test_file_need_from_plain_paths_and_folders_only(prompt: str, needs_files: bool) -> None:
    assert (FILE_NEED in implied_needs(prompt)) is needs_files


def test_example_requests_come_from_the_tool_itself() -> None:
    assert example_requests("get forecast", "Weather forecast for a place. Uses NOAA.") == [
        "I need get forecast.",
        "Can you help me weather forecast for a place?",
    ]
