"""The known mistakes of the BPE tokenizer (reference/bpe.py).

Registered in the diagnosis's catalogue when this package is imported; the engine
(:mod:`grader.diagnosis`) never imports the checks, it is handed these through the registry.
Each plant edits the reference's source so that its outputs (a merge table, token ids, a text)
can be compared with the student's exactly.
"""

from __future__ import annotations

from grader.diagnosis.catalogue import Mistake, register

Q6 = "day30-capstone-and-checkpoint.md Q6 (BPE tokenization step by step)"
S41 = ("series4-llms-and-transformers-summary.md Module 4.1 (subword tokenization: the merge "
       "table IS the tokenizer)")

register(
    Mistake(
        "bpe_encode_by_frequency", "encoding merges the most frequent pair of the text, not the "
                                   "earliest merge of the table",
        "The merge table IS the tokenizer: at encode time, merge the adjacent pair with the "
        "LOWEST index in the table (the first learned), never the pair most frequent in the "
        "text being encoded; frequencies matter only during training.",
        f"{S41}; {Q6}",
        plant={"bpe": [(
            "            best = min(pairs, key=lambda p: ranks.get(p, len(ranks)))",
            "            known = [p for p in zip(ids, ids[1:]) if p in ranks]\n"
            "            best = max(known, key=known.count) if known else (-1, -1)"), (
            "            best = min(pairs, key=lambda p: self.bpe_ranks.get(p, float(\"inf\")))",
            "            known = [p for p in zip(parts, parts[1:]) if p in self.bpe_ranks]\n"
            "            best = max(known, key=known.count) if known else ('', '')")]},
    ),
    Mistake(
        "bpe_ties_first_seen", "ties between equally frequent pairs are not broken by the "
                               "smallest pair",
        "When several pairs share the highest count, the docstring picks the SMALLEST pair "
        "(first id, then second, as numbers): min(counts, key=lambda p: (-counts[p], p)). "
        "max(counts, key=counts.get) takes the pair seen first instead.",
        Q6,
        plant={"bpe": [("pair = min(counts, key=lambda p: (-counts[p], p))",
                        "pair = max(counts, key=counts.get)")]},
        flavours={"largest": {"bpe": [("pair = min(counts, key=lambda p: (-counts[p], p))",
                                       "pair = max(counts, key=lambda p: (counts[p], p))")]}},
    ),
    Mistake(
        "bpe_no_pretokenize", "the text is not split into pre-tokens: merges cross word "
                              "boundaries",
        "Split the text with GPT2_PATTERN first (pretokenize) and count and merge pairs only "
        "inside each piece; otherwise a merge such as 'e' + ' ' glues the end of one word to "
        "the space of the next, which GPT-2 never does.",
        Q6,
        plant={"bpe": [("    return regex.findall(GPT2_PATTERN, text)",
                        "    return [text] if text else []")]},
    ),
    Mistake(
        "bpe_space_apart", "the space is kept apart from the word after it, outside the bytes "
                           "that merge",
        "A space is byte 32 like any other and belongs to the pre-token of the word after it: "
        "GPT-2's ' the' is ONE token ('Ġthe' in encoder.json is b' the'). Do not split spaces "
        "off or treat them as separators.",
        f"{Q6}; {S41}",
        plant={"bpe": [("    return regex.findall(GPT2_PATTERN, text)",
                        "    return [p for w in regex.findall(GPT2_PATTERN, text)\n"
                        "            for p in ((w[0], w[1:]) if w[0] == ' ' and w[1:].strip() "
                        "else (w,))]")]},
    ),
    Mistake(
        "bpe_id_offset", "merge i does not get the id 256 + i (off by one)",
        "Ids 0-255 are the 256 bytes, so the first merge is id 256 and merge i is 256 + i: "
        "257 + i leaves a hole, 255 + i reuses the byte 255.",
        Q6,
        plant={"bpe": [("new_id = FIRST_MERGE_ID + len(merges)",
                        "new_id = FIRST_MERGE_ID + len(merges) + 1"),
                       ("ids = merge(ids, best, FIRST_MERGE_ID + ranks[best])",
                        "ids = merge(ids, best, FIRST_MERGE_ID + ranks[best] + 1)"),
                       ("vocab[FIRST_MERGE_ID + i] = vocab[a] + vocab[b]",
                        "vocab[FIRST_MERGE_ID + i + 1] = vocab.get(a, b'') + vocab.get(b, b'')")]},
        flavours={"minus": {"bpe": [
            ("new_id = FIRST_MERGE_ID + len(merges)", "new_id = FIRST_MERGE_ID + len(merges) - 1"),
            ("ids = merge(ids, best, FIRST_MERGE_ID + ranks[best])",
             "ids = merge(ids, best, FIRST_MERGE_ID + ranks[best] - 1)"),
            ("vocab[FIRST_MERGE_ID + i] = vocab[a] + vocab[b]",
             "vocab[FIRST_MERGE_ID + i - 1] = vocab.get(a, b'') + vocab.get(b, b'')")]}},
    ),
    Mistake(
        "bpe_merge_overlap", "merge() moves on by one after replacing a pair, so occurrences "
                             "overlap",
        "After replacing ids[i], ids[i + 1] by the new id, continue at i + 2: the two ids are "
        "used up. Moving on by one lets the second id start another pair: merge([97, 97, 97], "
        "(97, 97), 256) must give [256, 97], not [256, 256, 97].",
        Q6,
        plant={"bpe": [("            out.append(new_id)\n            i += 2",
                        "            out.append(new_id)\n            i += 1")]},
    ),
    Mistake(
        "bpe_decode_per_token", "decode turns each token into a str on its own, instead of "
                                "decoding the joined bytes",
        "A character can be split across tokens (an emoji is 4 bytes, 'é' is 2): join the "
        "bytes of all the tokens first, then decode once: b''.join(...).decode('utf-8', "
        "errors='replace'). Decoding token by token turns each half character into '�'.",
        S41,
        plant={"bpe": [("    return data.decode(\"utf-8\", errors=\"replace\")",
                        "    return ''.join(vocab[i].decode('utf-8', errors='replace') "
                        "for i in ids)"),
                       ("        return bytes(self.byte_decoder[c] for c in text).decode(",
                        "        return ''.join(bytes(self.byte_decoder[c] for c in "
                        "self.decoder[i]).decode('utf-8', errors='replace') for i in ids)\n"
                        "        return bytes(self.byte_decoder[c] for c in text).decode(")]},
    ),
)
