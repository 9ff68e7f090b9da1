
echohello, world
chunk_bytes