-- Inference traffic, counted per hour, user and Llm: counters, not events (the event log records
-- changes to the catalogue, not traffic). Each replica adds what it served every few seconds.
CREATE TABLE inference_usage (
    bucket TEXT NOT NULL,
    user_name TEXT NOT NULL,
    llm TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, user_name, llm)
);
