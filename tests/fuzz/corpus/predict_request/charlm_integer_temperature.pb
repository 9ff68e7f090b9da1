
charlmA
temperature

max_tokens€ 