Feature: Bad configuration is refused at start, by name
  Every component reads its configuration once, at start; a bad value stops
  it before it serves anything, with a message naming the variable and what
  it expected.

  @needs:process
  Scenario Outline: gantry serve <component> with <variable>=<value> refuses to start
    When `gantry serve <component>` starts with <variable>=<value>
    Then it exits at once, saying "<named>" and "<expected>"

    Examples:
      | component | variable                 | value   | named                    | expected          |
      | gateway   | GANTRY_LB                | fastest | GANTRY_LB                | round_robin or p2c |
      | auth      | GANTRY_JWT_ALG           | HS256   | GANTRY_JWT_SECRET        | 32 bytes          |
      | user      | GANTRY_JWT_SECRET        | short   | GANTRY_JWT_SECRET        | at least 32 bytes |
      | gateway   | GANTRY_SESSION_CACHE_TTL | 1m      | GANTRY_SESSION_CACHE_TTL | at most 5s        |
