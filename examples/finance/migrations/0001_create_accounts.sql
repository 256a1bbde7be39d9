-- Accounts of the ledger. Amounts are integer minor units (cents) in `bigint` columns.
-- The SQL is written once for PostgreSQL and SQLite: text ids chosen by the application, app-set
-- timestamps (no database defaults, whose formats differ), checks both engines enforce.

-- migrate:up
create table accounts (
  id text primary key,
  name text not null,
  currency text not null check (length(currency) = 3),
  -- the lowest balance allowed: 0 for a plain account, negative for an overdraft, null for no limit
  min_balance bigint,
  -- maintained by every posting in the same transaction as its journal lines
  balance bigint not null default 0,
  created_at timestamptz not null,
  constraint accounts_balance_within_limit check (min_balance is null or balance >= min_balance)
);

-- migrate:down
drop table accounts;
