"""ReadStats: what reading the input skipped and why, summed over files, chunks and processes.

Nothing is dropped silently. Lines: invalid UTF-8, longer than the line limit, and
documents left empty by skipping. Records (JSON Lines and Parquet): lines that are
not JSON objects, records without the text field (or with null), fields that are not
text (neither a string nor a list of strings), and records whose text is empty. The
first few skipped records are kept as examples: file, record number and reason.
"""

from dataclasses import asdict, dataclass, field

MAX_EXAMPLES = 10
SKIP_REASONS = {
    "bad_json": "bad_json_records",
    "missing_field": "missing_field_records",
    "not_text": "not_text_records",
    "empty": "empty_records",
}


@dataclass
class ReadStats:
    lines: int = 0
    documents: int = 0
    invalid_utf8_lines: int = 0
    overlong_lines: int = 0
    empty_documents: int = 0
    records: int = 0
    bad_json_records: int = 0
    missing_field_records: int = 0
    not_text_records: int = 0
    empty_records: int = 0
    skipped_examples: list = field(default_factory=list)

    def skip(self, reason, path, number, detail=""):
        """Count a skipped record: reason is a key of SKIP_REASONS; number counts records from 1."""
        key = SKIP_REASONS[reason]
        setattr(self, key, getattr(self, key) + 1)
        if len(self.skipped_examples) < MAX_EXAMPLES:
            self.skipped_examples.append({"file": path, "record": int(number), "reason": reason,
                                          **({"detail": detail} if detail else {})})

    @property
    def skipped_records(self):
        return sum(getattr(self, key) for key in SKIP_REASONS.values())

    def add(self, other):
        for key, value in asdict(other).items():
            if key == "skipped_examples":
                room = MAX_EXAMPLES - len(self.skipped_examples)
                self.skipped_examples.extend(value[:max(0, room)])
            else:
                setattr(self, key, getattr(self, key) + value)
        return self

    def as_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        """From `as_dict` output; keys this version does not know (or older records lack) are tolerated."""
        known = {k: v for k, v in (values or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)
