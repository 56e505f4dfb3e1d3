-- Prices set through the admin UI and the JSON API (issue 25), merged with
-- the price files `connectors.d/prices/*.conf` into the registry's price
-- book (an item priced in a file is managed by the file). A price is per
-- connector instance and item: an instance type (per hour), a volume type
-- (per GiB-month) or the instance's Elastic IPs (per hour, item_name '').
-- Amounts in millionths of the broker's currency, times in ms since the
-- epoch; a price applies from effective_at until the next one's.
CREATE TABLE prices (
    instance     TEXT NOT NULL,
    item_kind    TEXT NOT NULL CHECK (item_kind IN ('instance', 'volume', 'address')),
    item_name    TEXT NOT NULL,
    effective_at BIGINT NOT NULL,
    price        BIGINT NOT NULL,
    set_by       TEXT NOT NULL,
    set_at       BIGINT NOT NULL,
    PRIMARY KEY (instance, item_kind, item_name, effective_at)
);
-- A markup per connector instance, in hundredths of a percent (negative:
-- a discount).
CREATE TABLE price_markups (
    instance TEXT NOT NULL PRIMARY KEY,
    markup   BIGINT NOT NULL,
    set_by   TEXT NOT NULL,
    set_at   BIGINT NOT NULL
);
