
charlm

max_tokens"5