"""How a notice travels: one SNS message per protocol, attributes to filter on, a Chatbot card.

A notice (what `report` renders) is {"subject", "text", "document", "attributes", "card"}:
- `text` is for a person: SNS's `default` and `email` keys;
- `document` is the versioned JSON of the same facts (docs/notices.md): the `sqs`, `lambda`,
  `https`, `http`, `email-json` and `firehose` keys, so a program never parses the text;
- `attributes` are SNS message attributes (`event`, `status`, `account`, `region`,
  `finding_type`, and `severity` when a finding has one) that subscription filter policies read;
- `card` is the same event in AWS Chatbot's custom-notification shape, published to
  CHATBOT_TOPIC_ARN when it is set (Chatbot drops any other shape).
The state machine composes the same message from the same keys (deploy/statemachine.py), so a
notice reads the same whichever publishes it.
"""

import json
import re

from chalicelib.findings import severity_text

SCHEMA = "ec2-quarantine/notice"
VERSION = 1
TEXT_PROTOCOLS = ("default", "email")
# Every protocol a program reads: SNS falls back to `default` (the text) for any not named.
DOCUMENT_PROTOCOLS = ("sqs", "lambda", "https", "http", "email-json", "firehose")
# Bounds on each part, so that the composed message (the text twice, the document six times,
# escaped as JSON strings) stays far below SNS's 256 KB, and the execution state that carries a
# notice far below its own 256 KB, whatever the incident holds.
TEXT_LIMIT = 10 * 1024
DOCUMENT_LIMIT = 12 * 1024
CARD_LIMIT = 4 * 1024
# SNS refuses an attribute without a value: a fact nobody knows is said as this.
UNKNOWN = "unknown"


def message(notice: dict) -> str:
    """The `Message` of a `MessageStructure=json` publish: the text for people, the document
    for programs."""
    document = json.dumps(notice["document"], sort_keys=True, ensure_ascii=False)
    return json.dumps({**{key: notice["text"] for key in TEXT_PROTOCOLS},
                       **{key: document for key in DOCUMENT_PROTOCOLS}}, ensure_ascii=False)


def attributes(event: str, status: str, account, region, finding_type, severity=None) -> dict:
    """SNS message attributes: strings, and `severity` a Number (a filter policy can say
    `{"severity": [{"numeric": [">=", 7]}]}`), left out when no finding gave one."""
    values = {"event": event, "status": status, "account": account, "region": region,
              "finding_type": finding_type}
    shaped = {name: {"DataType": "String", "StringValue": str(value or UNKNOWN)[:256]}
              for name, value in values.items()}
    if isinstance(severity, (int, float)) and not isinstance(severity, bool):
        shaped["severity"] = {"DataType": "Number", "StringValue": severity_text(severity)}
    return shaped


_LINK_MARKS = re.compile(r"([\\\[\]<>])")


def plain(text: str) -> str:
    """`text` with the characters that make links and mentions in chat markdown escaped
    (`[text](url)`, `<url|text>`, `<!channel>`): a value someone chose (a Name tag, a domain)
    never renders as a link or pings a channel."""
    return _LINK_MARKS.sub(r"\\\1", text)


def card(title: str, description: str, next_steps: list[str], keywords: list[str],
         thread: str, event: str, resources: list[str]) -> dict:
    """AWS Chatbot's custom notification: `version` "1.0", `source` "custom", `content` (its
    `textType` "client-markdown", `title`, `description`, `nextSteps`, `keywords`) and
    `metadata` (`threadId` keeps one incident's cards in one thread). `description` is markdown
    already (its values escaped with `plain`); the title and steps are escaped here."""
    while len(json.dumps(description)) > CARD_LIMIT:  # as it travels: escaped
        description = description[:len(description) * 3 // 4].rstrip() + " ..."
    return {"version": "1.0", "source": "custom", "id": f"{thread}:{event}"[:256],
            "content": {"textType": "client-markdown", "title": plain(title[:250]),
                        "description": description,
                        "nextSteps": [plain(step) for step in next_steps[:5]],
                        "keywords": [plain(str(k))[:64] for k in keywords if k][:10]},
            "metadata": {"threadId": thread, "summary": plain(title[:250]), "eventType": event,
                         "relatedResources": resources[:5]}}
