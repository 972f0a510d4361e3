"""The bare-tag fast path of html_to_text gives exactly what html.parser gives."""
from __future__ import annotations

import random

import pytest

from ingest_worker.sources import text

CASES = [
    "<p>Hello</p><p>World</p>", "<ul><li>one</li><li>two</li></ul>", "a<br>b<br/>c<br />d",
    "<DIV>Upper &amp; case</DIV>", "<p>  spaced \n\t text  </p>", "<p>&nbsp;x&euro;5 &amp</p>",
    "<div><p>Hello</p></div>after", "x > y <b>bold</b>", "<p>a</p>\n\n\n<p>b</p>", "<hr/><hr>",
    "<p>&#39;quoted&#x27;</p>", "<p>tail &amp", "<p>unclosed",
]
FALLBACK = ["<p class='x'>a</p>", "<!-- c --><p>a</p>", "a < b <p>c</p>", "<script>x<y</script><p>a</p>",
            "<p >a</p>", "</p/>", "<style>p{}</style>b"]


@pytest.mark.parametrize("html", CASES)
def test_fast_path_equals_parser(html):
    parts = text._simple_html_parts(html)
    assert parts is not None
    assert "".join(parts) == "".join(text._parser_parts(html))


@pytest.mark.parametrize("html", FALLBACK)
def test_anything_else_goes_to_the_parser(html):
    assert text._simple_html_parts(html) is None
    assert text.html_to_text(html) == _slow_html_to_text(html)


def _slow_html_to_text(html):
    raw = "".join(text._parser_parts(html)).replace("\xa0", " ")
    out = "\n".join(line.strip() for line in raw.split("\n"))
    import re
    return re.sub(r"\n{3,}", "\n\n", out).strip() or None


def test_random_markup_fast_path_matches_parser():
    rng = random.Random(5)
    tags = ["p", "P", "div", "li", "ul", "br", "b", "span", "h1", "tr", "hr", "td", "title", "x1"]
    texts = ["word", " ", "\n", "&amp;", "&nbsp;", "&lt;", "a&b", "&#169;", "\xa0", "  two  words ",
             ">", "&", "&euro", "<", "<!--c-->", "\t"]
    fast = 0
    for _ in range(5000):
        bits = []
        for _ in range(rng.randint(1, 12)):
            roll = rng.random()
            tag = rng.choice(tags)
            if roll < 0.3:
                bits.append(f"<{tag}>")
            elif roll < 0.5:
                bits.append(f"</{tag}>")
            elif roll < 0.6:
                bits.append(rng.choice((f"<{tag}/>", f"<{tag} />", f"<{tag} a='1'>")))
            else:
                bits.append(rng.choice(texts))
        html = "".join(bits)
        parts = text._simple_html_parts(html)
        if parts is not None:
            fast += 1
            assert "".join(parts) == "".join(text._parser_parts(html)), repr(html)
        assert text.html_to_text(html) == _slow_html_to_text(html) if text._LOOKS_HTML.search(html) else True
    assert fast > 1000  # the comparison above did exercise the fast path
