-- Access keys and tokens follow the token rules (issue 20, items 1 and 15).
-- credentials.expires_at: when an EC2 access key (scope `ec2-access-key`)
-- stops working (ms since the epoch), NULL for never; a key minted by an
-- expiring API token expires with it. Other scopes leave it NULL.
-- api_tokens.parent_id: the token that minted this one (NULL when it was
-- minted with a password or a session); a token is refused once any of its
-- ancestors is revoked.
ALTER TABLE credentials ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN parent_id TEXT;
CREATE INDEX api_tokens_by_parent ON api_tokens (parent_id);
