fn main() -> anyhow::Result<()> {
    dcports::cli::run()
}
