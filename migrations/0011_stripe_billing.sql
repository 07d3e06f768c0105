-- Stripe billing: a user's customer and subscription as last read from
-- Stripe, the grace a failed payment starts, and the webhook events applied
-- (each once).
ALTER TABLE users
    ADD COLUMN stripe_customer_id     text,
    ADD COLUMN stripe_subscription_id text,
    -- The plan the subscription pays for (from its price), and its status
    -- (active, past_due, canceled, ...) as Stripe last said.
    ADD COLUMN subscription_plan      text,
    ADD COLUMN subscription_status    text,
    ADD COLUMN current_period_end     timestamptz,
    -- Set while a failed payment's grace runs; past it the user is on free.
    ADD COLUMN grace_until            timestamptz;
CREATE UNIQUE INDEX users_stripe_customer_key ON users (stripe_customer_id);
CREATE INDEX users_grace_until ON users (grace_until) WHERE grace_until IS NOT NULL;

CREATE TABLE stripe_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
