-- CreateVolume's ClientToken (issue 22): a token is the project's, per
-- connector instance, as EC2's is the account's per region. The row is
-- claimed (volume_id NULL) before the cloud is asked, so two requests with
-- the same token, on any replica, make one volume; it names the volume once
-- it is recorded, and is deleted if the cloud call fails. `request` is the
-- request's parameters in a canonical form: the same token with other
-- parameters is EC2's IdempotentParameterMismatch.
CREATE TABLE volume_client_tokens (
    project      TEXT NOT NULL,
    instance     TEXT NOT NULL,
    client_token TEXT NOT NULL,
    request      TEXT NOT NULL,
    volume_id    TEXT,
    claimed_at   BIGINT NOT NULL,
    PRIMARY KEY (project, instance, client_token)
);
