"""OpenAI-style fine-tuning jobs over tailored runs: uploaded files, a persisted queue, a worker per job."""
