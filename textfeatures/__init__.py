"""Text features shared by the model build and the service (torch-free).

A model must see exactly the same inputs when it is trained and when it is served, so everything
that turns a text into model inputs, and model outputs back into spans, lives here once:

- `words`: word boundaries as users write them (`T2DM`, `IL-6`, `TNF-α`, `Retrieval-augmented`
  are one word each; brackets, commas and sentence-final stops are words of their own);
- `acronyms`: the Schwartz–Hearst style acronym matcher (the weak labeller of pretraining, and an
  input feature of the served models);
- `features`: token ids plus the per-token feature ids a model reads (word shape, word start,
  the acronym rule's tags, a candidate-phrase tag);
- `decode`: constrained BIO Viterbi over words, from label probabilities to spans;
- `tasks`: the names a task and its span labels may have, and the head order of a task's labels.

It depends on nothing heavier than the standard library, numpy and `tokenizers`.
"""
