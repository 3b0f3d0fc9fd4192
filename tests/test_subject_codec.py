"""RFC 2047 subjects: what the subject tool produces must decode back, everywhere."""

from __future__ import annotations

import email.policy
import time
from email import message_from_bytes
from email.header import decode_header, make_header

import pytest

from smtpplus.subject_codec import MAX_WORD, decode, encode, encode_words, graphemes

SUBJECTS = {
    "seed": "I love you ♥",
    "latin": "Café crème, naïve façade — Ærøskøbing Łódź",
    "cyrillic": "Счёт на оплату № 42 готов",
    "cjk": "ご注文ありがとうございます 订单已发货 주문이 접수되었습니다",
    "arabic": "مرحبا بكم في متجرنا، طلبك في الطريق",
    "hebrew": "ההזמנה שלך נשלחה",
    "emoji": "Sale 🔥🔥 ends today 👍🏽 🇮🇹 👨‍👩‍👧‍👦 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "long": "Your monthly statement for account 1234 is ready — 請查收 — " * 8,
    "punctuation": "Re: [ticket #7] 50% off? _underscores_ = equals (yes!) \"quoted\"",
    "leading and trailing spaces": "  padded  ",
}


def stdlib_decode(value: str) -> str:
    return str(make_header(decode_header(value)))


def parsed_subject(value: str) -> str:
    """The Subject as a real mail parser sees it in a message with that header."""
    msg = message_from_bytes(f"Subject: {value}\r\n\r\nbody\r\n".encode("ascii"),
                             policy=email.policy.default)
    return str(msg["Subject"])


@pytest.mark.parametrize("text", SUBJECTS.values(), ids=SUBJECTS.keys())
def test_both_forms_round_trip_through_our_decoder_and_the_stdlib(text):
    encoded = encode(text)
    for value in (encoded.q, encoded.b):
        assert value.isascii()
        assert decode(value).text == text
        assert decode(value).problems == []
        assert stdlib_decode(value) == text
        assert parsed_subject(value) == text


@pytest.mark.parametrize("text", SUBJECTS.values(), ids=SUBJECTS.keys())
def test_every_encoded_word_is_at_most_75_characters(text):
    encoded = encode(text)
    for word in encoded.q_words + encoded.b_words:
        assert len(word) <= MAX_WORD, word


@pytest.mark.parametrize("text", SUBJECTS.values(), ids=SUBJECTS.keys())
def test_no_encoded_word_splits_a_character_or_a_grapheme_that_fits(text):
    for mode in ("Q", "B"):
        words = encode_words(text, mode)
        pieces = [stdlib_decode(w) for w in words]  # each word decodes on its own
        assert "".join(pieces) == text
        boundaries = set()
        pos = 0
        for cluster in graphemes(text):
            if len(encode_words(cluster, mode)) > 1:  # too big for one word: code points
                boundaries.update(range(pos + 1, pos + len(cluster)))
            pos += len(cluster)
            boundaries.add(pos)
        pos = 0
        for piece in pieces[:-1]:
            pos += len(piece)
            assert pos in boundaries, (mode, piece)


def test_a_long_subject_is_split_into_several_words():
    words = encode_words(SUBJECTS["long"], "Q")
    assert len(words) > 5
    assert all(w.startswith("=?utf-8?Q?") and w.endswith("?=") for w in words)


def test_the_seed_example_encodes_to_its_q_form():
    assert encode("I love you ♥").q == "=?utf-8?Q?I_love_you_=E2=99=A5?="
    assert encode("I love you ♥").b == "=?utf-8?B?SSBsb3ZlIHlvdSDimaU=?="


def test_emoji_with_skin_tone_flag_and_zwj_sequence_are_one_grapheme_each():
    assert graphemes("👍🏽🇮🇹👩‍💻e\u0301") == ["👍🏽", "🇮🇹", "👩‍💻", "e\u0301"]


def test_a_grapheme_too_big_for_one_word_is_split_between_code_points_only():
    family = "👨‍👩‍👧‍👦"  # 25 bytes: 75 characters in Q, more than one word holds
    words = encode_words(family, "Q")
    assert len(words) == 2
    assert all(len(w) <= MAX_WORD for w in words)
    assert "".join(stdlib_decode(w) for w in words) == family


def test_an_empty_subject_has_no_words():
    assert encode("").q_words == [] and encode("").b_words == []


def test_line_breaks_in_the_text_become_spaces():
    assert decode(encode("two\nlines").q).text == "two lines"


def test_it_decodes_the_seeds_form_with_spaces_inside_the_word():
    result = decode("=?utf-8?Q?I love you =E2=99=A5?=")
    assert result.text == "I love you ♥"
    assert any("spaces inside an encoded-word" in p for p in result.problems)


def test_it_decodes_the_seeds_plain_example():
    assert decode("=?utf-8?Q?This is the subject text?=").text == "This is the subject text"


def test_it_decodes_a_whole_folded_subject_line_with_mixed_words():
    header = "Subject: Order =?UTF-8?B?4pyU?=\r\n =?iso-8859-1?q?confirm=E9e?= today"
    result = decode(header)
    assert result.text == "Order ✔confirmée today"
    assert result.problems == []


def test_it_joins_a_character_split_across_two_words():
    assert decode("=?utf-8?Q?=E2=99?= =?utf-8?Q?=A5?=").text == "♥"


def test_it_reports_an_unknown_charset_and_still_shows_the_text():
    result = decode("=?x-klingon?Q?abc?=")
    assert result.text == "abc"
    assert result.problems == ["unknown charset 'x-klingon'; shown as UTF-8"]


def test_it_reports_bytes_that_are_not_valid_in_the_charset():
    result = decode("=?utf-8?Q?caf=E9?=")
    assert result.text == "caf\ufffd"
    assert any("not valid utf-8" in p for p in result.problems)


def test_it_reports_bad_base64_and_keeps_the_word():
    result = decode("Hi =?utf-8?B?###?=")
    assert result.text == "Hi =?utf-8?B?###?="
    assert any("bad B encoding" in p for p in result.problems)


def test_it_reports_a_bad_q_escape():
    result = decode("=?utf-8?Q?100=ZZ?=")
    assert result.text == "100=ZZ"
    assert any("bad Q encoding" in p for p in result.problems)


def test_it_reports_an_unknown_encoding_letter():
    result = decode("=?utf-8?X?abc?=")
    assert result.text == "=?utf-8?X?abc?="
    assert any("unknown encoding 'X'" in p for p in result.problems)


def test_it_reports_an_incomplete_word():
    assert decode("=?utf-8?Q?unterminated").problems


def test_control_characters_are_replaced_and_reported():
    result = decode("=?utf-8?Q?a=0D=0Ab=00?=")
    assert "\r" not in result.text and "\x00" not in result.text
    assert any("control characters" in p for p in result.problems)


@pytest.mark.parametrize("garbage", ["", "=?", "?=", "=??=", "=?utf-8??=", "=?utf-8?B?a?=",
                                     "=?" * 5000, "\x00\xff", "=?utf-8*en?Q?hi?="])
def test_decoding_never_raises(garbage):
    assert isinstance(decode(garbage).text, str)


@pytest.mark.parametrize("header", ["=?idna?Q?xn--zz?=", "=?punycode?Q?=FF?=", "=?undefined?Q?x?="])
def test_a_charset_that_cannot_replace_bad_bytes_is_shown_as_utf8(header):
    result = decode(header)
    assert isinstance(result.text, str)
    assert any("shown as UTF-8" in p for p in result.problems)


def test_an_idna_word_that_is_not_valid_punycode_is_shown_as_written():
    result = decode("=?idna?Q?xn--zz?=")
    assert result.text == "xn--zz"
    assert result.problems == ["bad encoding: the bytes are not valid idna; shown as UTF-8"]


def test_a_charset_name_with_a_nul_is_an_unknown_charset():
    result = decode("=?a\x00b?Q?x?=")
    assert result.text == "x"
    assert result.problems == ["unknown charset 'a\\x00b'; shown as UTF-8"]


def test_a_lone_question_mark_inside_a_word_belongs_to_its_text():
    result = decode("=?utf-8?Q?Is_it_ok?_yes?= =?utf-8?Q?=E2=99=A5?=")
    assert result.text == "Is it ok? yes♥"
    assert result.words == 2


@pytest.mark.parametrize("header", ["=?a?q?a" * 2857, "=?a?q? " * 2857, "=?a?b" * 4000])
def test_a_long_header_of_unterminated_words_decodes_in_linear_time(header):
    started = time.perf_counter()
    result = decode(header)
    assert result.words == 0
    # The backtracking pattern this replaces took over half a second on such input.
    assert time.perf_counter() - started < 0.2
