"""The subject tool: encode a subject as RFC 2047 encoded-words, decode a pasted header."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.tenancy import member_required
from smtpplus.subject_codec import MAX_INPUT, MAX_WORD, decode, encode


@member_required()
def subject_tool(request: HttpRequest) -> HttpResponse:
    # GET forms: nothing changes, and a result can be bookmarked or shared with a colleague.
    text = request.GET.get("text", "")[:MAX_INPUT]
    header = request.GET.get("header", "")
    context = {
        "text": text,
        "header": header[:MAX_INPUT],
        "encoded": encode(text) if text else None,
        "decoded": decode(header) if header.strip() else None,
        "max_word": MAX_WORD,
    }
    return render(request, "subject_tool.html", context)
