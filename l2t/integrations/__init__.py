"""`l2t.LearnedLoss` inside the training loops people already run: Lightning
(`l2t.integrations.lightning`, `pip install 'l2t[lightning]'`) and the Hugging Face
`Trainer` (`l2t.integrations.huggingface`, `pip install 'l2t[huggingface]'`). Each is
imported on its own, so l2t needs neither library."""
