-- 018: supervision through the media service (issue 14 section 2). A queue with
-- `supervised` on sends each call it offers through the media service as two legs, so a
-- supervisor can whisper (5#) and barge (6#) as well as listen (4#). Default off: those
-- calls cost media service CPU (bench/supervise.py). The queue table's statement trigger
-- (003) already NOTIFYs the directory loader on UPDATE.
ALTER TABLE queue ADD COLUMN supervised BOOLEAN NOT NULL DEFAULT false;
