"""deploy: adapter -> checked bundle -> Cloudflare Workers AI finetune -> verified, failing closed at every step."""
