//! `abide explain` and `abide doctor` (issue 6). Placeholder interface; being built.

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The error text, or `-` to read it from stdin.
    pub text: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// The host to check.
    pub host: Option<String>,
}

pub fn run_explain(_args: ExplainArgs) -> anyhow::Result<i32> {
    anyhow::bail!("abide explain is not built yet")
}

pub fn run_doctor(_args: DoctorArgs) -> anyhow::Result<i32> {
    anyhow::bail!("abide doctor is not built yet")
}
