"""llm-compressor's one-shot pruning, for benchmarks/oneshot_bench.py (run in its own venv).

    /work/venv-llmc/bin/python benchmarks/oneshot_llmc.py MODEL_DIR CALIB.pt OUT.pt METHOD PATTERN

METHOD: sparsegpt or wanda; PATTERN: 0.5 or 2:4. Loads the Hugging Face model saved in
MODEL_DIR, prunes it with llmcompressor.oneshot on exactly the calibration batches saved in
CALIB.pt (a list of {"input_ids", "attention_mask"} dicts), and saves the pruned state dict
and the seconds spent inside `oneshot` (model loading and imports excluded) to OUT.pt.
"""

from __future__ import annotations

import sys
import time

import torch


def main() -> None:
    model_dir, calib_path, out_path, method, pattern = sys.argv[1:6]
    from llmcompressor import oneshot
    from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(int(sys.argv[6]) if len(sys.argv) > 6 else torch.get_num_threads())
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    batches = torch.load(calib_path)
    loader = torch.utils.data.DataLoader(batches, batch_size=None)  # our batches, as they are
    if ":" in pattern:
        sparsity, structure = 0.5, pattern
    else:
        sparsity, structure = float(pattern), "0:0"
    cls = SparseGPTModifier if method == "sparsegpt" else WandaPruningModifier
    kwargs = {"block_size": 128, "dampening_frac": 0.01} if method == "sparsegpt" else {}
    modifier = cls(
        sparsity=sparsity,
        mask_structure=structure,
        targets=["Linear"],
        ignore=["re:.*lm_head"],
        **kwargs,
    )
    # oneshot insists on a processor when given data; ours is tokenized already, so a
    # word-level tokenizer over the model's vocabulary stands in (it is never called)
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {str(i): i for i in range(model.config.vocab_size)}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, "0")))
    start = time.perf_counter()
    oneshot(
        model=model,
        processor=tok,
        dataset=loader,
        recipe=modifier,
        num_calibration_samples=10**6,
    )
    seconds = time.perf_counter() - start
    torch.save({"state_dict": model.state_dict(), "seconds": seconds}, out_path)


if __name__ == "__main__":
    main()
