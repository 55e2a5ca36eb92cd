"""The post's text: prompts for each part, the Compiler that turns model text into a post and
its craft rules, text clean-up, prompt-injection checks, and the writer that runs them all."""
