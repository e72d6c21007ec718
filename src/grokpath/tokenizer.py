"""A word-level tokenizer trained locally with `tokenizers` for the embedded default.

Word level keeps every number, digit and entity one token, so each test answer is one token.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"


def train_word_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """Train a whitespace word-level vocabulary; the tokenizer prepends <bos> to every text."""
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=[PAD, UNK, BOS, EOS], min_frequency=1)
    # Sorted input makes the vocabulary order independent of corpus order.
    tok.train_from_iterator(sorted(set(texts)), trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, unk_token=UNK, bos_token=BOS, eos_token=EOS)
