"""The few parts of SentencePiece's ModelProto (sentencepiece_model.proto) read or changed here, on the wire.

The generated protobuf module shipped with sentencepiece needs a newer protobuf
runtime than TensorFlow allows, so the model bytes are walked directly: a
ModelProto is a sequence of (field number, wire type, value) records, and each
piece (field 1) is a small message of piece text (1), score (2) and type (3).
"""

PIECES = 1  # ModelProto.pieces
PIECE_TEXT, PIECE_SCORE, PIECE_TYPE = 1, 2, 3  # SentencePiece fields
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6  # SentencePiece.Type


def varint(buf, i):
    """(value, next index) of the base-128 varint at buf[i]."""
    result = shift = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def encode_varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def fields(buf):
    """Yield (field number, wire type, value, (start, end) of the whole record) of one protobuf message.

    Raises ValueError on a wire type protobuf does not define, IndexError on truncated bytes.
    """
    i, n = 0, len(buf)
    while i < n:
        start = i
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("unsupported protobuf wire type %d" % wire)
        if i > n:
            raise IndexError("truncated protobuf message")
        yield number, wire, value, (start, i)


def piece_type(piece_message):
    """(piece text, type) of one serialized SentencePiece message (type NORMAL when absent)."""
    text, kind = "", NORMAL
    for number, _, value, _ in fields(piece_message):
        if number == PIECE_TEXT:
            text = bytes(value).decode("utf-8")
        elif number == PIECE_TYPE:
            kind = value
    return text, kind


def with_control_pieces(model, names):
    """The model bytes with every piece whose text is in `names` and whose type is USER_DEFINED made CONTROL.

    SentencePiece matches user-defined pieces in the input text, control pieces never
    (sentencepiece's model.proto: "control symbols ... are not appeared in the input text").
    Returns the bytes unchanged when no piece needs it.
    """
    names = set(names)
    out, last, changed = [], 0, False
    for number, wire, value, (start, end) in fields(model):
        if number != PIECES or wire != 2:
            continue
        text, kind = piece_type(value)
        if kind != USER_DEFINED or text not in names:
            continue
        body = b"".join(bytes(value[s:e]) for n, _, _, (s, e) in fields(value) if n != PIECE_TYPE)
        body += encode_varint(PIECE_TYPE << 3) + encode_varint(CONTROL)
        out += [bytes(model[last:start]), encode_varint(PIECES << 3 | 2), encode_varint(len(body)), body]
        last, changed = end, True
    if not changed:
        return bytes(model)
    out.append(bytes(model[last:]))
    return b"".join(out)
